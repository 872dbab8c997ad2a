"""Ctrl-C during a conversion or an evaluation: one line, status 130, well within a second of
work, and nothing half-written (tests in subprocesses, the signal sent to the process group
as a terminal does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# From the signal to the process's exit. The work itself stops within ~0.1 s and the process
# skips TensorFlow's teardown (spreid_tf.cli.exit_now): ~0.3 s measured on 2 quiet cores. The
# bound leaves room for a machine under full load; it fails if the interrupt waits for the job.
EXIT_BOUND_S = 5.0


def _write_market(root: Path, num_train: int, num_gallery: int) -> None:
    """A raw Market-1501 folder of `num_train` + 8 + `num_gallery` copies of one JPEG."""
    rng = np.random.default_rng(0)
    ok, jpeg = cv2.imencode(".jpg", rng.integers(0, 255, (64, 32, 3), dtype=np.uint8))
    assert ok
    for folder, count, first_pid in (("bounding_box_train", num_train, 2), ("query", 8, 500),
                                     ("bounding_box_test", num_gallery, 500)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            pid = first_pid + (i % 8 if folder != "bounding_box_train" else i % 40)
            camera = 1 + (i % 6) if folder != "query" else 1
            camera = camera if folder == "query" or camera != 1 else 2
            (root / folder / f"{pid:04d}_c{camera}s1_{i:06d}_00.jpg").write_bytes(jpeg.tobytes())


def _run_until(command: list[str], ready, timeout: float = 240.0) -> tuple[int, float, str]:
    """Starts `command` in its own process group, sends SIGINT to the group once
    `ready(output, pid)`, and returns (status, seconds from the signal to the exit, output)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.pop("SPREID_TF_TRACEBACK", None)

    def start():
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job would inherit SIG_IGN
        os.setsid()

    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, preexec_fn=start)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.time() + timeout
    while not ready("".join(lines), process.pid):
        assert process.poll() is None, f"finished before the interrupt:\n{''.join(lines)[-3000:]}"
        assert time.time() < deadline, "".join(lines)[-3000:]
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)
    sent = time.time()
    status = process.wait(timeout=60)
    elapsed = time.time() - sent
    reader.join(timeout=10)
    return status, elapsed, "".join(lines)


def _assert_one_line_interrupt(status: int, elapsed: float, output: str) -> None:
    assert status == 130, output[-3000:]
    assert "Traceback" not in output and output.rstrip().splitlines()[-1] == "interrupted", output[-3000:]
    assert elapsed < EXIT_BOUND_S, f"exited {elapsed:.2f} s after SIGINT"


@pytest.mark.slow
def test_ctrl_c_during_conversion_leaves_no_output(tmp_path):
    _write_market(tmp_path / "raw", num_train=20000, num_gallery=40)
    out = tmp_path / "out"
    status, elapsed, output = _run_until(
        [sys.executable, "datasets/convert.py", "--dataset=market1501", f"--root={tmp_path / 'raw'}",
         f"--output_dir={out}", "--progress_every=100"],
        lambda text, pid: "train: checked: 100/" in text)
    _assert_one_line_interrupt(status, elapsed, output)
    # The conversion is written into a temporary sibling and renamed at the end: nothing is left.
    assert not out.exists() or list(out.iterdir()) == [], sorted(out.rglob("*"))


@pytest.mark.slow
def test_ctrl_c_during_evaluation_keeps_only_whole_files(tmp_path):
    import keras

    from spreid_tf.data.convert import convert_dataset
    from spreid_tf.models import build_baseline_model

    _write_market(tmp_path / "raw", num_train=40, num_gallery=6000)
    convert_dataset("market1501", tmp_path / "raw", tmp_path / "tfrecords")
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    keras.utils.set_random_seed(0)
    build_baseline_model(40, "mobilenet_v2", input_size=(64, 32)).save(model_dir / "model.keras")
    status, elapsed, output = _run_until(
        [sys.executable, "-m", "spreid_tf.evaluate", f"--model_dir={model_dir}",
         f"--data_dir={tmp_path / 'tfrecords'}", "--batch_size=16"],
        # The query split's cache is written: the gallery's extraction has begun.
        lambda text, pid: any(model_dir.glob("features_*_query.npz")))
    _assert_one_line_interrupt(status, elapsed, output)
    left = sorted(p.name for p in model_dir.iterdir())
    assert [n for n in left if n.startswith("features_")] == [next(model_dir.glob("features_*_query.npz")).name]
    assert not any(n.startswith(".") or "tmp" in n for n in left), left
    assert not (model_dir / "eval_market1501").exists()
    with np.load(next(model_dir.glob("features_*_query.npz"))) as cached:
        assert cached["embedding"].shape[0] == 8


def _loading_tensorflow(text: str, pid: int) -> bool:
    """True once TensorFlow's library is mapped into the process: its import has begun (it
    takes seconds; `main` starts only after it)."""
    try:
        return "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see TensorFlow load")
@pytest.mark.parametrize("command", [
    ["datasets/convert.py", "--dataset=market1501"],
    ["-m", "spreid_tf.evaluate"],
    ["-m", "spreid_tf.train"],
    ["-m", "spreid_tf.train_parsing"],
    ["-m", "spreid_tf.demo"],
], ids=lambda c: c[-1] if c[0] == "-m" else c[0])
def test_ctrl_c_while_tensorflow_loads_is_one_line(command):
    status, elapsed, output = _run_until([sys.executable, *command], _loading_tensorflow)
    _assert_one_line_interrupt(status, elapsed, output)
