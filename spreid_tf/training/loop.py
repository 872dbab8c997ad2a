"""The custom training loop: distributed input, checkpoints, resume, TensorBoard, progress.

    trainer = step.Trainer(strategy, model, groups, step.reid_loss)
    result = loop.train_loop(trainer, dataset_fn, total_steps=200_000, model_dir=...,
                             global_batch_size=15)

- Input: `strategy.distribute_datasets_from_function(dataset_fn)`; `dataset_fn`
  receives the `tf.distribute.InputContext` and must shard and batch at the
  per-replica size (the `spreid_tf.data.pipelines` functions do both), and gets
  the step it starts from so that a resumed run draws fresh batches.
- Checkpoints: every `checkpoint_every` steps and at the end, the last
  `keep_checkpoints` kept (`tf.train.CheckpointManager` over the model, every
  optimizer with its slots and iteration count, which positions the learning-rate
  schedule, the global step and the loss scale). A run restarts from the latest
  checkpoint in model_dir automatically. The tf.data iterator is not
  checkpointed (its shuffle buffers would be large): a resumed run reshuffles.
- TensorBoard (`<model_dir>/train`): loss, accuracy, gradient norm, learning rate
  per group, images/s, loss scale; one log line per `log_every` steps with the
  rate and the ETA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import tensorflow as tf

from spreid_tf.training import strategy as strategy_lib
from spreid_tf.training.step import Trainer

logger = logging.getLogger(__name__)

# (input_context, start_step) -> per-replica dataset of (images, labels)
DatasetFn = Callable[[tf.distribute.InputContext, int], tf.data.Dataset]


@dataclasses.dataclass
class TrainResult:
    """What a `train_loop` call did.

    Attributes:
        start_step: the step it started (or resumed) from.
        final_step: the step it stopped at.
        metrics: the metrics of the last logging window ("loss", "accuracy", ...).
        checkpoint: path of the last checkpoint written, or None.
        history: (step, metrics) of every logging window of this call.
        interrupted: "SIGINT" or "SIGTERM" if a signal stopped the run (after a checkpoint
            at `final_step`), else None.
    """

    start_step: int
    final_step: int
    metrics: dict[str, float]
    checkpoint: str | None
    history: list[tuple[int, dict[str, float]]] = dataclasses.field(default_factory=list)
    interrupted: str | None = None


def interrupted_exit_status(interrupted: str | None) -> int:
    """The shell's exit status for a run stopped by `interrupted` (130 for SIGINT, 143 for SIGTERM), else 0."""
    return 128 + signal.Signals[interrupted].value if interrupted else 0


@contextlib.contextmanager
def _stop_on_signals(enabled: bool) -> Iterator[list[str]]:
    """While active, SIGINT (Ctrl-C) and SIGTERM (preemption) ask the loop to stop at the next step.

    Yields a list that receives the signal's name. A second Ctrl-C interrupts at once, as
    usual. Only in the main thread (Python's rule for handlers) and when `enabled`. An
    ignored SIGINT stays ignored (the Unix convention for background jobs, and for worker
    processes whose parent answers Ctrl-C, as the demo's do); SIGTERM is handled regardless,
    so a run started with nohup still checkpoints when its machine is preempted.
    """
    received: list[str] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(name)
        logger.warning("%s: stopping after this step with a checkpoint (Ctrl-C again to stop at once)", name)

    handled = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {sig: signal.signal(sig, handler) for sig in handled}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class _Window:
    """Sums of the step outputs since the last log line (kept on the device until read)."""

    def __init__(self):
        self.sums = None
        self.steps = 0
        self.restart_clock()

    def restart_clock(self) -> None:
        """Times only the steps added from now on (used to leave out the tracing step)."""
        self.timed_steps = 0
        self.start = time.perf_counter()

    def add(self, outputs: dict) -> None:
        self.sums = outputs if self.sums is None else {k: self.sums[k] + outputs[k] for k in outputs}
        self.steps += 1
        self.timed_steps += 1

    def read(self, global_batch_size: int) -> dict[str, float]:
        values = {k: float(v) for k, v in self.sums.items()}
        elapsed = time.perf_counter() - self.start
        rate = self.timed_steps / elapsed if self.timed_steps and elapsed > 0 else float("nan")
        return {
            "loss": values["loss_sum"] / max(values["count"], 1.0),
            "accuracy": values["correct"] / max(values["count"], 1.0),
            "grad_norm": values["grad_norm"] / self.steps,
            "skipped_steps": values["skipped"],
            "steps_per_second": rate,
            "images_per_second": rate * global_batch_size,
        }


def restore_latest(checkpoint: tf.train.Checkpoint, model_dir: str) -> str | None:
    """Restores the latest checkpoint in model_dir (every saved object must match); returns its path."""
    latest = tf.train.latest_checkpoint(model_dir)
    if latest is not None:
        checkpoint.restore(latest).assert_existing_objects_matched()
    return latest


def train_loop(
    trainer: Trainer,
    dataset_fn: DatasetFn,
    *,
    total_steps: int,
    model_dir: str,
    global_batch_size: int,
    checkpoint_every: int = 1000,
    keep_checkpoints: int = 5,
    log_every: int = 100,
    stop_after: int | None = None,
) -> TrainResult:
    """Trains until `total_steps`, resuming from the latest checkpoint in model_dir.

    Args:
        trainer: the model's Trainer (model, groups and strategy).
        dataset_fn: `(input_context, start_step) -> dataset` of per-replica batches.
        total_steps: the step at which training ends.
        model_dir: checkpoints and TensorBoard events go here.
        global_batch_size: images per step over all replicas (for images/s).
        checkpoint_every: steps between checkpoints (one is also written at the end).
        keep_checkpoints: how many checkpoints to keep.
        log_every: steps between log lines and TensorBoard points.
        stop_after: stop early once this step is reached (the run can be resumed);
            None trains to `total_steps`.

    SIGINT (Ctrl-C) or SIGTERM (a preemptible machine's notice) ends the run after the
    current step with a checkpoint (single-worker runs; TrainResult.interrupted says which).

    Returns:
        A TrainResult.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    strategy = trainer.strategy
    chief = strategy_lib.is_chief(strategy)
    out_dir = strategy_lib.write_dir(model_dir, strategy)
    tf.io.gfile.makedirs(out_dir)

    checkpoint = trainer.checkpoint()
    manager = tf.train.CheckpointManager(checkpoint, out_dir, max_to_keep=keep_checkpoints,
                                         checkpoint_name="ckpt")
    # Every worker restores the chief's checkpoint (model_dir is shared).
    restored = restore_latest(checkpoint, model_dir)
    start_step = int(trainer.step.numpy())
    if strategy_lib.task_type_and_id(strategy)[0] is not None:
        _check_same_step_everywhere(strategy, trainer.step)
    if restored:
        logger.info("Resumed from %s at step %d (learning rates %s)", restored, start_step,
                    _format_lrs(trainer.learning_rates()))
    end_step = total_steps if stop_after is None else min(total_steps, stop_after)

    writer = (tf.summary.create_file_writer(os.path.join(model_dir, "train")) if chief
              else tf.summary.create_noop_writer())
    last_checkpoint = restored
    metrics: dict[str, float] = {}
    history: list[tuple[int, dict[str, float]]] = []
    if start_step >= end_step:
        logger.info("Nothing to do: at step %d, training ends at %d", start_step, end_step)
        return TrainResult(start_step, start_step, metrics, last_checkpoint)

    dataset = strategy.distribute_datasets_from_function(lambda ctx: dataset_fn(ctx, start_step))
    iterator = iter(dataset)
    logger.info("Training steps %d -> %d on %d replica(s), global batch %d", start_step, end_step,
                strategy.num_replicas_in_sync, global_batch_size)
    window = _Window()
    run_start = time.perf_counter()
    step = start_step
    interrupted = None
    # Multi-worker runs stop together or not at all: there a signal keeps its default action.
    single_worker = strategy_lib.task_type_and_id(strategy)[0] is None
    with writer.as_default(), _stop_on_signals(single_worker) as signals:
        while step < end_step:
            outputs = trainer.train_step(iterator)
            step += 1
            window.add(outputs)
            if step == start_step + 1:
                # The first step traces and compiles: keep it out of the rates and the ETA.
                logger.info("Step %d done (the first step includes tracing: %.1f s)", step,
                            time.perf_counter() - run_start)
                window.restart_clock()
                run_start = time.perf_counter()
            if step % log_every == 0 or step == end_step:
                metrics = window.read(global_batch_size)
                history.append((step, metrics))
                _log_and_summarize(trainer, step, total_steps, metrics, step - start_step - 1,
                                   time.perf_counter() - run_start)
                window = _Window()
            if step % checkpoint_every == 0 or step == end_step or signals:
                last_checkpoint = manager.save(checkpoint_number=step)
                logger.info("Saved checkpoint %s", last_checkpoint)
            if signals and step < end_step:
                interrupted = signals[0]
                logger.warning("%s: stopped at step %d of %d; checkpoint %s; run the same command again to resume",
                               interrupted, step, total_steps, last_checkpoint)
                break
        writer.flush()
    if not chief and tf.io.gfile.exists(out_dir):
        # Other workers only saved to take part in the save; the chief's copy is the one kept.
        tf.io.gfile.rmtree(out_dir)
    return TrainResult(start_step, step, metrics, last_checkpoint, history, interrupted)


def _check_same_step_everywhere(strategy: tf.distribute.Strategy, step_variable: tf.Variable) -> None:
    """Fails (on every worker) unless all workers restored the same step.

    A worker that cannot read the chief's model_dir would start from step 0 and the
    others would wait for it forever in the first all-reduce.
    """
    @tf.function
    def spread():
        def replica_fn():
            value = tf.cast(step_variable.read_value(), tf.float32)
            count = tf.distribute.get_replica_context().num_replicas_in_sync
            mean = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, value) / count
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                                   tf.square(value - mean))
        return strategy.experimental_local_results(strategy.run(replica_fn))[0]

    if float(spread()) > 0:
        raise RuntimeError(f"workers restored different steps (this one: {int(step_variable.numpy())}); "
                           "model_dir must be on a filesystem every worker can read")


def _scalar_metadata():
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    return metadata.SerializeToString()


def summary_scalar(name: str, value: float, step: int) -> None:
    """Writes a TensorBoard scalar to the default writer.

    Same record as `tf.summary.scalar` (a float32 tensor tagged for the "scalars"
    plugin), written with TensorFlow's own op, so the `tensorboard` package is
    needed only to view the events, not to train.
    """
    tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=_scalar_metadata())


def _format_lrs(lrs: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in lrs.items())


def _log_and_summarize(trainer: Trainer, step: int, total_steps: int, metrics: dict[str, float],
                       timed_steps: int, timed_seconds: float) -> None:
    lrs = trainer.learning_rates()
    # The ETA uses the mean rate of this run so far (steady, unlike one window's rate).
    rate = timed_steps / timed_seconds if timed_steps > 0 and timed_seconds > 0 else 0.0
    eta = _format_duration((total_steps - step) / rate) if rate > 0 else "?"
    logger.info("step %d/%d  loss %.4f  acc %.3f  |g| %.3g  lr %s  %.1f img/s  %.2f step/s  ETA %s",
                step, total_steps, metrics["loss"], metrics["accuracy"], metrics["grad_norm"],
                _format_lrs(lrs), metrics["images_per_second"], metrics["steps_per_second"], eta)
    summary_scalar("train/loss", metrics["loss"], step=step)
    summary_scalar("train/accuracy", metrics["accuracy"], step=step)
    summary_scalar("train/grad_norm", metrics["grad_norm"], step=step)
    if metrics["images_per_second"] == metrics["images_per_second"]:  # not NaN
        summary_scalar("perf/images_per_second", metrics["images_per_second"], step=step)
    for name, lr in lrs.items():
        summary_scalar(f"lr/{name}", lr, step=step)
    if trainer.loss_scale is not None:
        summary_scalar("train/loss_scale", float(trainer.loss_scale.scale.numpy()), step=step)
        summary_scalar("train/skipped_steps", metrics["skipped_steps"], step=step)
