"""Pooling as Chainer and Caffe do it, for the SPReID authors' InceptionV3 (spreid_tf.models.authors_weights).

Keras pools differ from Chainer's in two places the authors' network uses:
  - Chainer's `average_pooling_2d(x, k, 1, pad)` pads with zeros and divides every window
    by k*k, padding included (Caffe, cuDNN's COUNT_INCLUDE_PADDING); Keras' "same"
    average pooling divides by the number of real pixels in the window.
  - Chainer's `max_pooling_2d(x, k, s)` defaults to `cover_all=True` (Caffe's ceil mode):
    ceil((H - k) / s) + 1 outputs, the last window reaching past the input; Keras' "valid"
    gives floor((H - k) / s) + 1 (at 512 px InceptionV3's second stem pooling has 62 rows
    in Chainer, 61 in Keras).
"""

from __future__ import annotations

import keras
from keras import ops


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or any(v < 0 for v in pair):
        raise ValueError(f"{name} must be an int or a pair of non-negative ints, got {value!r}")
    return pair


@keras.saving.register_keras_serializable(package="spreid_tf")
class ZeroPaddedAveragePooling2D(keras.layers.Layer):
    """Stride-1 average pooling over a zero-padded input: every window is divided by its full size.

    Args:
        pool_size: window (int or (h, w)).
        padding: zeros added on each side (int or (h, w)); `pool_size = 2 * padding + 1`
            keeps the grid.
    """

    def __init__(self, pool_size=3, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, "pool_size")
        self.padding = _pair(padding, "padding")

    def call(self, inputs):
        (ph, pw) = self.padding
        x = ops.pad(inputs, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
        return ops.average_pool(x, self.pool_size, strides=1, padding="valid")

    def compute_output_shape(self, input_shape):
        def side(size, k, p):
            return None if size is None else size + 2 * p - k + 1
        return (input_shape[0], side(input_shape[1], self.pool_size[0], self.padding[0]),
                side(input_shape[2], self.pool_size[1], self.padding[1]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": list(self.pool_size), "padding": list(self.padding)})
        return config


@keras.saving.register_keras_serializable(package="spreid_tf")
class CeilModeMaxPooling2D(keras.layers.Layer):
    """Max pooling without padding whose last window may reach past the input (Chainer's cover_all).

    The input is padded by `strides - 1` rows and columns of -inf at the bottom and the
    right, then pooled "valid": ceil((H - k) / s) + 1 outputs. Every window starts inside
    the input (k >= s), so the padding never wins.

    Args:
        pool_size: window (int or (h, w)), at least the stride.
        strides: stride (int or (h, w)).
    """

    def __init__(self, pool_size=3, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = _pair(strides, "strides")
        if any(k < s or s < 1 for k, s in zip(self.pool_size, self.strides)):
            raise ValueError(f"{self.name}: pool_size {self.pool_size} must be at least the strides {self.strides}")

    def call(self, inputs):
        (sh, sw) = self.strides
        x = ops.pad(inputs, ((0, 0), (0, sh - 1), (0, sw - 1), (0, 0)), constant_values=float("-inf"))
        return ops.max_pool(x, self.pool_size, strides=self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        def side(size, k, s):
            return None if size is None else (size - k + s - 1) // s + 1
        return (input_shape[0], side(input_shape[1], self.pool_size[0], self.strides[0]),
                side(input_shape[2], self.pool_size[1], self.strides[1]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": list(self.pool_size), "strides": list(self.strides)})
        return config
