"""spreid_tf.layers and spreid_tf.models on Keras' TensorFlow and JAX backends: same outputs, portable files.

One pipeline (tests/backend_helper.py has the cases and the stages):
TensorFlow builds every layer (each in a tiny model) and every model variant and saves
weights, inputs, outputs and `.keras` files (in this process: pytest runs Keras on
TensorFlow, and a second TensorFlow start-up would cost ~5 s); a subprocess with
KERAS_BACKEND=jax and TensorFlow blocked builds the same cases with the same builders and
weights, loads the TensorFlow `.keras` files, saves them again and runs SGD steps; then
TensorFlow loads the files saved under JAX. Every output must agree with TensorFlow's.

Bound: |JAX - TensorFlow| <= 1e-5 * max(1, max |TensorFlow|) per output, in float32. Both
compute the same sums in different orders (oneDNN vs XLA:CPU kernels), so each dot product
of K terms differs by about sqrt(K) * 2^-24 of its magnitude (relative 6e-8 per rounding);
through the ~100 layers of InceptionV3 with batch norm these stay near 1e-7 relative
(measured: below 1e-6 on every output, the largest on the embeddings), while an error of
semantics (padding, a half-pixel offset, antialiasing, a weight in the wrong place) moves
outputs by 1e-3 or more. The bound leaves a factor of ~15 for other CPUs' kernels.
"""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

pytest.importorskip("jax", reason="the JAX backend tests need jax (pip install -e '.[test]' installs it)")

import backend_helper  # noqa: E402  (tests/ is on sys.path: conftest.py)
from numpy_reference import bilinear_resize  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_TENSORFLOW = os.path.join(REPO, "tests", "no_tensorflow")
RELATIVE_BOUND = 1e-5


def _jax_env(**extra) -> dict:
    """KERAS_BACKEND=jax, on the CPU, with `import tensorflow` blocked (tests/no_tensorflow).

    XLA's code generator runs at LLVM optimisation level 0: JAX compiles every initializer
    shape and model once, and this cuts that time by a third. The HLO passes and the
    float32 arithmetic stay the same (measured: outputs within 5e-7 of the default level's).
    """
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (NO_TENSORFLOW, REPO, os.environ.get("PYTHONPATH")) if p)
    env["XLA_FLAGS"] = " ".join(f for f in (os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0") if f)
    return env


def _run(args: list[str], env: dict, timeout: int) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def _max_differences(reference: dict, other: dict) -> dict[str, tuple[float, float]]:
    """key -> (max |other - reference|, max |reference|)."""
    assert sorted(other) == sorted(reference)
    out = {}
    for key, value in reference.items():
        assert other[key].shape == value.shape, (key, other[key].shape, value.shape)
        out[key] = (float(np.abs(other[key] - value).max()), float(np.abs(value).max()))
    return out


def _load(path: str) -> dict:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.slow
def test_layers_and_models_agree_across_tensorflow_and_jax(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the pipeline starts from Keras' TensorFlow backend (tests/conftest.py)")
    workdir = str(tmp_path)
    backend_helper.stage_build(workdir)
    keras.backend.clear_session()
    _run([os.path.join("tests", "backend_helper.py"), workdir], _jax_env(), timeout=400)
    backend_helper.stage_load(workdir)
    keras.backend.clear_session()

    reference = _load(os.path.join(workdir, "outputs_build.npz"))
    report, failures = {}, []
    for name in ("built", "loaded", "reloaded"):
        # built: JAX, same builders and weights; loaded: JAX, TensorFlow's .keras files;
        # reloaded: TensorFlow, the .keras files saved under JAX.
        for key, (diff, scale) in _max_differences(reference, _load(
                os.path.join(workdir, f"outputs_{name}.npz"))).items():
            report[f"{name} {key}"] = diff
            if not diff <= RELATIVE_BOUND * max(1.0, scale):
                failures.append(f"{name} {key}: max |diff| {diff:.3g} (max |value| {scale:.3g})")
    print(json.dumps({"max_abs_diff": max(report.values()), **report}, indent=1))
    assert not failures, "\n".join(failures)
    # A round trip through JAX changes no weight: TensorFlow computes exactly what it did.
    assert max(v for k, v in report.items() if k.startswith("reloaded")) == 0.0

    # Both backends resize like tf.image.resize (half-pixel centres, no antialiasing down or up).
    inputs = _load(os.path.join(workdir, "inputs.npz"))
    for case, size in (("resize_like_up", (7, 9)), ("resize_like_down", (4, 5)), ("resize_like_mixed", (11, 4)),
                       ("resize_to_down", (4, 5)), ("resize_to_up", (10, 7))):
        np.testing.assert_allclose(reference[f"{case}/output"], bilinear_resize(inputs[f"{case}/0"], size),
                                   rtol=1e-5, atol=1e-5, err_msg=case)

    with open(os.path.join(workdir, "train.json")) as f:
        train = json.load(f)
    print(json.dumps(train, indent=1))
    assert not train["tensorflow_imported"]
    spreid = train["spreid"]
    assert np.isfinite([spreid["loss_before"], spreid["loss_after"]]).all()
    assert spreid["loss_after"] < spreid["loss_before"]
    assert spreid["trainable_changed"] == spreid["trainable"] > 0
    assert spreid["frozen"] > 0 and spreid["frozen_changed"] == 0
    for folder in ("tf", "jax", "weights"):  # ~700 MB; pytest keeps the last three runs' folders
        shutil.rmtree(os.path.join(workdir, folder))


def test_layers_and_models_import_without_tensorflow():
    """Under JAX, spreid_tf.layers, .models and .lip need no TensorFlow (nor does Keras)."""
    code = ("import sys, keras, spreid_tf.layers, spreid_tf.models, spreid_tf.lip; "
            "assert keras.backend.backend() == 'jax'; assert 'tensorflow' not in sys.modules; print('ok')")
    assert _run(["-c", code], _jax_env(), timeout=120).stdout.strip() == "ok"


@pytest.mark.slow
def test_jax_benchmarks_run_without_tensorflow(tmp_path):
    """The --backend=jax paths of the benchmarks import no TensorFlow (the GPU machine has none)."""
    # One compilation cache for both runs: the second reuses the first's compiled initialisers.
    env = _jax_env(JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    train = _run([os.path.join("benchmarks", "train_throughput.py"), "--backend=jax", "--quick",
                  "--models=baseline_mobilenet_v2"], env, timeout=300)
    assert "Device: 1 x cpu (cpu); jax.devices() = [CpuDevice(id=0)]" in train.stdout, train.stdout
    row = next(line for line in train.stdout.splitlines() if line.startswith("| baseline_mobilenet_v2 |"))
    assert "| float32 | on (jax.jit) |" in row and float(row.split("|")[5]) > 0, row

    infer = _run([os.path.join("benchmarks", "inference.py"), "--backend=jax", "--quick", "--backbone=mobilenet_v2"],
                 env, timeout=300)
    row = next(line for line in infer.stdout.splitlines() if line.startswith("| baseline | mobilenet_v2 |"))
    assert "| float32 | on (jax.jit) |" in row and float(row.split("|")[7]) > 0, row

    # The blocker works: the same import fails in such a process.
    blocked = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "blocked by tests/no_tensorflow" in blocked.stderr
