"""Makes `import tensorflow` fail in a Python process, as on a machine without TensorFlow.

Put this folder first on PYTHONPATH: Python imports `sitecustomize` at start-up, before the
program runs. tests/test_backends.py runs the JAX stage of its parity test and the JAX
benchmarks this way; by hand:

    KERAS_BACKEND=jax PYTHONPATH=tests/no_tensorflow python benchmarks/train_throughput.py --backend=jax --quick

Keras itself tries `import tensorflow` now and then (optional integrations) and goes on
without it when that fails, as it does where TensorFlow is not installed.
"""

import sys


class _NoTensorFlow:
    """A meta-path finder that answers every `tensorflow` import with ModuleNotFoundError."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by tests/no_tensorflow)", name=name)
        return None


sys.meta_path.insert(0, _NoTensorFlow())
