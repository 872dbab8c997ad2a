"""The user's ordinary mistakes, each a real command line: one `error:` line naming the flag or
file, status 2, no traceback, nothing written (issue 11's table; the converter's wrong name,
the client without a server and write_warmup's bad image are in test_cli, export/test_client
and export/test_export_lib)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _commands(tmp: Path) -> dict[str, tuple[list[str], str]]:
    missing = tmp / "missing"
    conversion = tmp / "tfrecords" / "market1501"
    conversion.mkdir(parents=True)
    (conversion / "manifest.json").write_text("{}")
    python = sys.executable
    return {
        "evaluate, missing data": (
            [python, "-m", "spreid_tf.evaluate", f"--model_dir={missing}", f"--data_dir={missing}"],
            f"{missing}/market1501 is not a finished conversion"),
        "evaluate, --data_dir is the conversion itself": (
            [python, "-m", "spreid_tf.evaluate", f"--model_dir={missing}", f"--data_dir={conversion}"],
            f"--data_dir={conversion} is itself a conversion; --data_dir is the folder holding them: "
            f"pass --data_dir={conversion.parent}"),
        "export, missing model": (
            [python, "-m", "spreid_tf.export", f"--model_dir={missing}", f"--output={tmp / 'exports' / '1'}"],
            f"--model_dir='{missing}' does not exist (expected a model_dir holding model.keras"),
        "batch_infer, missing SavedModel": (
            [python, "export/batch_infer.py", f"--saved_model={missing}/1", f"--input={tmp}",
             f"--output={tmp / 'out.npz'}"],
            f"--saved_model='{missing}/1' is not a SavedModel folder"),
        "train, missing data": (
            [python, "-m", "spreid_tf.train", "--flagfile=configs/synthetic.flags", f"--train_data={missing}",
             f"--model_dir={tmp / 'run'}"],
            f"--train_data='{missing}' not found"),
        "train_parsing, missing data": (
            [python, "-m", "spreid_tf.train_parsing", "--flagfile=configs/synthetic_parsing.flags",
             f"--train_data={missing}", f"--model_dir={tmp / 'parsing_run'}"],
            f"--train_data='{missing}' not found"),
        "demo --data_only without --workdir": (
            [python, "-m", "spreid_tf.demo", "--data_only"], "--data_only needs --workdir=DIR"),
    }


@pytest.mark.slow
def test_ordinary_mistakes_are_one_line_naming_the_flag_or_file(tmp_path):
    commands = _commands(tmp_path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("SPREID_TF_TRACEBACK", None)
    # All at once: most of each run is importing TensorFlow.
    running = {name: subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for name, (argv, _) in commands.items()}
    for name, process in running.items():
        out, err = process.communicate(timeout=300)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert process.returncode == 2 and "Traceback" not in err + out, f"{name}:\n{err[-3000:]}"
        assert len(errors) == 1 and commands[name][1] in errors[0], f"{name}: {errors}"
    # Nothing written: no run folder with a config.json, no export, no output file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tfrecords"]


@pytest.mark.slow
def test_converter_names_a_truncated_jpeg_once_without_tensorflows_decoder_lines(tmp_path):
    import cv2
    import numpy as np

    jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 32, 3), dtype=np.uint8))[1].tobytes()
    for folder, names in (("bounding_box_train", ["0002_c1s1_000001_00.jpg", "0002_c2s1_000002_00.jpg"]),
                          ("query", ["0003_c1s1_000003_00.jpg"]), ("bounding_box_test", ["0003_c2s1_000004_00.jpg"])):
        (tmp_path / "raw" / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / "raw" / folder / name).write_bytes(jpeg)
    (tmp_path / "raw" / "bounding_box_train" / "0002_c2s1_000002_00.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "SPREID_TF_TRACEBACK")}
    done = subprocess.run([sys.executable, "datasets/convert.py", "--dataset=market1501",
                           f"--root={tmp_path / 'raw'}", f"--output_dir={tmp_path / 'out'}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "jpeg_mem" not in done.stderr and "Premature end" not in done.stderr, done.stderr[-3000:]
    skips = [line for line in done.stderr.splitlines() if "skipping" in line]
    assert len(skips) == 1 and "bounding_box_train/0002_c2s1_000002_00.jpg" in skips[0], skips
