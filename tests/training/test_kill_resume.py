"""A training process killed with SIGKILL resumes at its last checkpoint (subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import distributed_script as script
from spreid_tf.training import loop

SCRIPT = os.path.abspath(script.__file__)


@pytest.mark.slow
def test_killed_run_resumes_at_the_checkpointed_step_with_the_schedule_lr(tmp_path):
    model_dir = str(tmp_path / "run")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    proc = subprocess.Popen([sys.executable, SCRIPT, "killable", model_dir], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while True:
            latest = tf.train.latest_checkpoint(model_dir)
            # Past the first decay (every 100 of the 400 steps), so the LR is not the base one.
            if latest and int(latest.rsplit("-", 1)[1]) >= 125:
                break
            assert proc.poll() is None, f"the run ended before it was killed: {proc.stderr.read()[-2000:]}"
            assert time.time() < deadline, "no checkpoint past step 125 within 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    latest = tf.train.latest_checkpoint(model_dir)
    step = int(latest.rsplit("-", 1)[1])
    assert step % script.KILLABLE_CHECKPOINT_EVERY == 0 and step < script.KILLABLE_TOTAL_STEPS
    trainer = script.killable_trainer()
    assert loop.restore_latest(trainer.checkpoint(), model_dir) == latest
    assert int(trainer.step.numpy()) == step
    decay = 0.5 ** (step // (script.KILLABLE_TOTAL_STEPS // 4))
    assert trainer.learning_rates() == pytest.approx({"body": 0.1 * decay, "head": 1.0 * decay})
    momenta = [v for v in trainer.groups[0].optimizer.variables if "momentum" in v.path]
    assert momenta and any(np.abs(m.numpy()).max() > 0 for m in momenta)

    result = loop.train_loop(trainer, script.killable_dataset_fn, total_steps=script.KILLABLE_TOTAL_STEPS,
                             model_dir=model_dir, global_batch_size=script.GLOBAL_BATCH,
                             checkpoint_every=script.KILLABLE_CHECKPOINT_EVERY, stop_after=step + 2)
    assert (result.start_step, result.final_step) == (step, step + 2)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_after_the_step_with_a_checkpoint(tmp_path, signum):
    model_dir = str(tmp_path / "run")
    trainer = script.killable_trainer()
    train_step, calls = trainer.train_step, []

    def step_then_signal(iterator):
        outputs = train_step(iterator)
        calls.append(1)
        if len(calls) == 7:
            os.kill(os.getpid(), signum)  # as Ctrl-C or a preemption notice would, mid-run
        return outputs

    trainer.train_step = step_then_signal
    # As in a terminal: Ctrl-C raises KeyboardInterrupt. (A test run started in the background,
    # as CI may be, inherits an ignored SIGINT, which the loop rightly leaves ignored.)
    terminal = signal.signal(signal.SIGINT, signal.default_int_handler)
    before = signal.getsignal(signum)
    try:
        result = loop.train_loop(trainer, script.killable_dataset_fn, total_steps=script.KILLABLE_TOTAL_STEPS,
                                 model_dir=model_dir, global_batch_size=script.GLOBAL_BATCH, checkpoint_every=25)
    finally:
        after = signal.getsignal(signum)
        signal.signal(signal.SIGINT, terminal)
    assert (result.final_step, result.interrupted) == (7, signal.Signals(signum).name)
    assert result.checkpoint == tf.train.latest_checkpoint(model_dir) and result.checkpoint.endswith("ckpt-7")
    assert after is before  # the handlers are the caller's again
    assert loop.interrupted_exit_status(result.interrupted) == 128 + signum
    assert loop.interrupted_exit_status(None) == 0
    # The same command resumes from there.
    again = script.killable_trainer()
    resumed = loop.train_loop(again, script.killable_dataset_fn, total_steps=script.KILLABLE_TOTAL_STEPS,
                              model_dir=model_dir, global_batch_size=script.GLOBAL_BATCH, stop_after=9)
    assert (resumed.start_step, resumed.final_step, resumed.interrupted) == (7, 9, None)


def test_an_ignored_sigint_stays_ignored_and_sigterm_is_still_handled(tmp_path):
    trainer = script.killable_trainer()
    train_step, calls = trainer.train_step, []

    def step_then_signals(iterator):
        outputs = train_step(iterator)
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # a background job's Ctrl-C: ignored
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # its machine's preemption notice: handled
        return outputs

    trainer.train_step = step_then_signals
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = loop.train_loop(trainer, script.killable_dataset_fn, total_steps=script.KILLABLE_TOTAL_STEPS,
                                 model_dir=str(tmp_path / "run"), global_batch_size=script.GLOBAL_BATCH,
                                 checkpoint_every=25)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (result.final_step, result.interrupted) == (5, "SIGTERM")
