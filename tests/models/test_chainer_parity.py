"""The authors' networks converted from Chainer compute what Chainer computes (issue 12).

A throwaway virtual environment gets Chainer 7.8.1 from the package registry (the one
download the test suite makes); tests/models/chainer_authors_net.py builds the authors'
parsing network and their InceptionV3 from the structure they published, with random
weights and batch-norm statistics, saves the parser with `chainer.serializers.save_hdf5`
(their LIP_iter_30000.chainermodel format) and the backbone as their per-layer ImageNet
dump, and runs both on random images at two sizes chosen to exercise the differences
(77x88: both stem max poolings in ceil mode give one more row than Keras' "valid"; 91x81:
only the first does, in width). Here `python -m spreid_tf.convert_weights` converts the
files and our models run on the same images.

Tolerances: the issue's 1e-4 on class probabilities (in [0, 1]); on backbone features the
same 1e-4 relative to the features' largest magnitude. Both networks compute the same
function in float32 and differ only by rounding (summation order of the convolutions);
measured: 2.4e-7 on probabilities, 7e-6 on features of magnitude ~4.5.

In CI (CI=true) a failure to build the environment fails the test; elsewhere (offline) it
skips with pip's message.
"""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest

from spreid_tf import convert_weights, run_folder
from spreid_tf.models import build_backbone, build_dilated_inception_v3

pytestmark = pytest.mark.slow

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SIZES = ("77x88", "91x81")
TOLERANCE = 1e-4
_QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(command: list[str], what: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def _build_chainer_venv(folder: str) -> str:
    python = os.path.join(folder, "bin", "python")
    _run([sys.executable, "-m", "venv", folder], "python -m venv")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run(pip + ["numpy<2", "setuptools<70", "wheel", "h5py"], "pip install numpy<2 setuptools<70 wheel h5py")
    _run(pip + ["--no-build-isolation", "chainer==7.8.1"], "pip install chainer==7.8.1")
    return python


@pytest.fixture(scope="module")
def chainer_outputs(tmp_path_factory) -> str:
    """The folder chainer_authors_net.py wrote (parser, dump, images, Chainer's outputs)."""
    root = tmp_path_factory.mktemp("chainer")
    try:
        python = _build_chainer_venv(str(root / "venv"))
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"could not build the Chainer environment: {error}")
        pytest.skip(f"could not build the Chainer environment (offline?): {error}")
    out = str(root / "out")
    _run([python, os.path.join(HERE, "chainer_authors_net.py"), out, "--sizes=" + ",".join(SIZES), "--seed=0"],
         "chainer_authors_net.py")
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    return np.asarray(keras.ops.softmax(keras.ops.convert_to_tensor(logits), axis=-1))


def test_converted_parser_matches_chainer(chainer_outputs, tmp_path):
    # In process (the binary runs in the last test): the .keras file as --parsing_model= reads it.
    output = convert_weights.convert(os.path.join(chainer_outputs, "parsing.chainermodel"),
                                     output=str(tmp_path / "authors" / "parsing.keras"))
    model = run_folder.load_model(output)
    assert run_folder.model_kind(model) == run_folder.PARSING
    for size in SIZES:
        images = np.load(os.path.join(chainer_outputs, f"images_{size}.npy"))
        expected = np.load(os.path.join(chainer_outputs, f"probabilities_{size}.npy"))
        outputs = model(images.astype("float32"))
        got = _softmax(np.asarray(outputs[run_folder.LOGITS]))
        assert got.shape == expected.shape, size
        assert np.abs(expected - got).max() <= TOLERANCE, size
        # Non-degenerate: the comparison sees every label's probability, not one-hot rows.
        assert expected.max(axis=-1).mean() < 0.9
        assert outputs[run_folder.PROBABILITIES].shape == images.shape[:3] + (20,)


def test_converted_dump_matches_chainer_in_both_backbones(chainer_outputs, tmp_path):
    output = convert_weights.convert(authors_dump_dir=os.path.join(chainer_outputs, "dump"),
                                     output=str(tmp_path / "inception_v3_authors.weights.h5"))
    networks = {"plain": build_backbone("inception_v3_authors", weights=output),
                "dilated": build_dilated_inception_v3(weights=output, authors=True)}
    for size in SIZES:
        images = np.load(os.path.join(chainer_outputs, f"images_{size}.npy")).astype("float32")
        for name, network in networks.items():
            expected = np.load(os.path.join(chainer_outputs, f"{name}_{size}.npy"))
            got = np.asarray(network(images))
            assert got.shape == expected.shape, (name, size)
            scale = max(1.0, float(np.abs(expected).max()))
            assert np.abs(expected - got).max() <= TOLERANCE * scale, (name, size)


def test_a_misshapen_link_fails_with_one_line_naming_it(chainer_outputs, tmp_path):
    broken = str(tmp_path / "broken.chainermodel")
    with open(os.path.join(chainer_outputs, "parsing.chainermodel"), "rb") as src, open(broken, "wb") as dst:
        dst.write(src.read())
    link = "predictor/inception/2/1/2/2/1"  # mixed10's last 3x1 convolution
    with h5py.File(broken, "r+") as f:
        del f[f"{link}/bn/avg_var"]
        f[f"{link}/bn/avg_var"] = np.ones(383, np.float32)
    result = subprocess.run([sys.executable, "-m", "spreid_tf.convert_weights", f"--chainer_parsing_model={broken}",
                             f"--output={tmp_path / 'parsing.keras'}"], capture_output=True, text=True, env=_QUIET,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and broken in lines[-1] and repr(link) in lines[-1], lines[-1]
    assert "(383,)" in lines[-1] and "(384,)" in lines[-1]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "parsing.keras")
