"""Shared test set-up: quiet TensorFlow, Keras on the TensorFlow backend, float32 policy."""
import os
import sys

# Test helpers (numpy references) live beside the tests; importlib mode does not add this folder.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts (and ends) under the float32 policy, whatever a test set."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")
