"""The train step under MirroredStrategy and MultiWorkerMirroredStrategy (subprocesses)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_script.py")


def _env(**extra: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_mirrored_two_devices_matches_one_device(tmp_path):
    out = tmp_path / "mirrored.npz"
    proc = subprocess.run([sys.executable, SCRIPT, "mirrored", str(out)], env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = np.load(out)
    np.testing.assert_allclose(result["mirrored_loss"], result["single_loss"], rtol=1e-5)
    np.testing.assert_allclose(result["mirrored_norm"], result["single_norm"], rtol=1e-5)
    # The clipping norm (0.5) is below the gradient norm: clipping was active.
    assert result["single_norm"][0] > 0.5
    keys = [k[len("single/"):] for k in result.files if k.startswith("single/")]
    assert any("moving_variance" in k for k in keys) and any("classifier" in k for k in keys)
    for key in keys:
        np.testing.assert_allclose(result[f"mirrored/{key}"], result[f"single/{key}"], rtol=1e-4, atol=1e-6,
                                   err_msg=key)


@pytest.mark.slow
def test_multi_worker_run_agrees(tmp_path):
    from training_helpers import write_reid_shards

    data_dir = tmp_path / "data"
    write_reid_shards(str(data_dir), num_shards=2)
    model_dir = tmp_path / "model"
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, SCRIPT, "worker", str(tmp_path / f"worker{index}.npz"), str(data_dir), str(model_dir)],
            env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=300)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-3000:]
    first, second = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert int(first["final_step"]) == int(second["final_step"]) == 4
    assert bool(first["chief"]) and not bool(second["chief"])
    np.testing.assert_allclose(first["loss"], second["loss"], rtol=1e-6)
    weights = [k for k in first.files if k.startswith("w/")]
    assert weights
    for key in weights:
        np.testing.assert_allclose(first[key], second[key], rtol=1e-6, atol=1e-7, err_msg=key)
    # Only the chief's checkpoints stay in model_dir; the other worker's scratch copy is gone.
    names = os.listdir(model_dir)
    assert "ckpt-4.index" in names and "ckpt-2.index" in names
    assert not [n for n in names if n.startswith(".scratch")]
