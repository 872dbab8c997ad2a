"""Tiny models saved as model_dir/model.keras and exported once per test session.

The baseline is exported with `python export/export.py` (a subprocess, so the
fixture also runs the binary); SPReID (255 MB of variables) in-process.
"""

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import keras
import numpy as np
import pytest
import tensorflow as tf

from spreid_tf import export_lib
from spreid_tf.data import pipelines
from spreid_tf.models import build_baseline_model, build_parsing_model, build_spreid_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASELINE_SIZE = (80, 80)
SPREID_SIZE = (96, 80)


@dataclasses.dataclass
class Exported:
    model: keras.Model
    model_dir: str
    export_dir: str
    size: tuple


def subprocess_env() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)
    return env


def run_python(args, cwd=REPO, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=subprocess_env(), capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def _smooth(rng, height, width):
    coarse = rng.integers(0, 256, (1, max(height // 8, 2), max(width // 8, 2), 3)).astype("float32")
    image = tf.image.resize(coarse, (height, width), method="bicubic")[0]
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


@pytest.fixture(scope="session")
def image_bytes() -> list:
    """Encoded test images of several sizes: JPEG 128x64, PNG 100x50, JPEG 90x90, grey PNG 60x40."""
    rng = np.random.default_rng(0)
    return [
        tf.io.encode_jpeg(_smooth(rng, 128, 64), quality=90).numpy(),
        tf.io.encode_png(_smooth(rng, 100, 50)).numpy(),
        tf.io.encode_jpeg(_smooth(rng, 90, 90), quality=75).numpy(),
        tf.io.encode_png(_smooth(rng, 60, 40)[..., :1]).numpy(),
    ]


def _keras_embeddings(model: keras.Model, encoded: list, size) -> np.ndarray:
    images = tf.stack([pipelines.resize_uint8(pipelines.decode_image(b), size) for b in encoded])
    embedding = np.asarray(model(tf.cast(images, tf.float32), training=False)["embedding"], np.float64)
    return embedding / np.linalg.norm(embedding, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def keras_embeddings():
    """(model, encoded images, size) -> the reference: decoded and resized as evaluation does,
    run through the Keras model, l2-normalised."""
    return _keras_embeddings


@pytest.fixture(scope="session")
def python():
    """Runs `python ARGS` in the repository root in a fresh process; fails on a non-zero exit."""
    return run_python


@pytest.fixture(scope="session")
def baseline(tmp_path_factory) -> Iterator[Exported]:
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    model = build_baseline_model(num_identities=3, input_size=BASELINE_SIZE)
    model_dir = tmp_path_factory.mktemp("baseline_run")
    model.save(str(model_dir / "model.keras"))
    exports = tmp_path_factory.mktemp("exports")
    export_dir = str(exports / "baseline" / "1")
    run_python(["export/export.py", f"--model_dir={model_dir}", f"--output={export_dir}",
                "--model_name=baseline"])
    yield Exported(model, str(model_dir), export_dir, BASELINE_SIZE)
    shutil.rmtree(exports, ignore_errors=True)
    shutil.rmtree(model_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def parsing_model():
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(1)
    return build_parsing_model()


@pytest.fixture(scope="session")
def spreid(tmp_path_factory, parsing_model) -> Iterator[Exported]:
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(2)
    model = build_spreid_model(3, input_size=SPREID_SIZE, parsing_model=parsing_model)
    model_dir = tmp_path_factory.mktemp("spreid_run")
    model.save(str(model_dir / "model.keras"))
    exports = tmp_path_factory.mktemp("exports")
    export_dir = export_lib.export_saved_model(model_dir, exports / "spreid" / "1")
    yield Exported(model, str(model_dir), export_dir, SPREID_SIZE)
    # Hundreds of MB: do not leave them in pytest's kept temporary folders.
    shutil.rmtree(exports, ignore_errors=True)
    shutil.rmtree(model_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def loaded_baseline(baseline):
    return tf.saved_model.load(baseline.export_dir)


@pytest.fixture(scope="session")
def loaded_spreid(spreid):
    return tf.saved_model.load(spreid.export_dir)
