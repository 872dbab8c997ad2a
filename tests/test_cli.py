"""Ordinary mistakes and Ctrl-C end in one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spreid_tf import cli
from spreid_tf.training import config as config_lib
from spreid_tf.training import reid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raises(error):
    def main(argv):
        raise error
    return main


@pytest.mark.parametrize("error, text", [
    (FileNotFoundError("--model_dir='x': x/model.keras not found"), "error: --model_dir='x': x/model.keras not found"),
    (KeyError("unknown dataset 'market'; known: [...]"), "error: unknown dataset 'market'; known: [...]"),
    (ValueError("input_size must be HEIGHT,WIDTH"), "error: input_size must be HEIGHT,WIDTH"),
])
def test_ordinary_errors_are_one_line_with_status_2(capsys, monkeypatch, error, text):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.one_line_errors(_raises(error))([])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == text + "\n"


def test_ctrl_c_is_one_line_with_status_130_and_bugs_keep_their_traceback(capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.one_line_errors(_raises(KeyboardInterrupt()), on_interrupt=sys.exit)([])
    assert exit_.value.code == 130 and capsys.readouterr().err == "interrupted\n"
    with pytest.raises(ZeroDivisionError):  # not an ordinary mistake: the traceback stays
        cli.one_line_errors(_raises(ZeroDivisionError()))([])
    monkeypatch.setenv(cli.TRACEBACK_VARIABLE, "1")
    with pytest.raises(FileNotFoundError):
        cli.one_line_errors(_raises(FileNotFoundError("x")))([])


def test_converter_with_a_wrong_dataset_name_says_so_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "datasets/convert.py", "--dataset=market", f"--root={tmp_path}",
                           f"--output_dir={tmp_path / 'out'}"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:") or "Traceback" in line]
    assert lines == [lines[0]] and "unknown dataset 'market'" in lines[0] and "market1501" in lines[0]


def test_missing_init_from_or_parsing_model_is_caught_before_the_run_starts(tmp_path):
    config = config_lib.ReidConfig(train_data=str(tmp_path), init_from=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="--init_from="):
        reid.check_model_files(config)
    config = config_lib.ReidConfig(train_data=str(tmp_path), model="spreid", parsing_model=str(tmp_path / "p.keras"))
    with pytest.raises(FileNotFoundError, match="--parsing_model="):
        reid.check_model_files(config)
    reid.check_model_files(config_lib.ReidConfig(train_data=str(tmp_path)))
