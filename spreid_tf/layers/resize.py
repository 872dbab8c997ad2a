"""Bilinear resizing layers that work on every Keras backend (TensorFlow and JAX tested).

`resize_like` holds the one backend-specific branch of spreid_tf.layers: under
TensorFlow a model built with `(None, None, 3)` inputs is traced inside a
`tf.function` (training, SavedModel export) where the target grid is a tensor known
only at run time, which `keras.ops.image.resize` does not accept, so that branch
calls `tf.image.resize` with `tf.shape`. Under JAX (and any other backend) shapes
are static at trace time and `keras.ops.image.resize` takes them as Python ints.
This module does not import TensorFlow itself (the JAX path runs without it).

Both branches are bilinear with half-pixel centres and no antialiasing, also when
scaling down (`tf.image.resize`'s default; `keras.ops.image.resize` passes
`antialias=False` to `jax.image.resize`), so they compute the same numbers.
"""

from __future__ import annotations

import keras
from keras import ops


def resize_like(x, reference, interpolation: str = "bilinear"):
    """Resizes `x (B, h, w, C)` to the grid of `reference (B, H, W, ...)`.

    Works when the grid is only known at run time inside a `tf.function` (TensorFlow
    backend) and under `jax.jit` (JAX backend). A floating `x` keeps its dtype (float16
    stays float16 under mixed precision); an integer one comes back as float32 unless
    `interpolation` is "nearest", as `tf.image.resize` does.
    """
    dtype = keras.backend.standardize_dtype(x.dtype)
    floating = "float" in dtype
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # already imported by Keras' TensorFlow backend

        resized = tf.image.resize(x, tf.shape(reference)[1:3], method=interpolation)
    else:
        if not floating and interpolation != "nearest":
            x = ops.cast(x, "float32")
        size = tuple(int(side) for side in ops.shape(reference)[1:3])
        resized = ops.image.resize(x, size, interpolation=interpolation, antialias=False)
    return ops.cast(resized, dtype) if floating else resized


@keras.saving.register_keras_serializable(package="spreid_tf")
class ResizeLike(keras.layers.Layer):
    """`[x (B,h,w,C), reference (B,H,W,...)]` -> x resized bilinearly to `(B,H,W,C)`.

    Unlike `keras.layers.Resizing`, the target size is read at run time, so models
    built with `(None, None, 3)` inputs can upsample to whatever came in.
    """

    def __init__(self, interpolation: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        self.interpolation = interpolation

    def call(self, inputs):
        x, reference = inputs
        return resize_like(x, reference, self.interpolation)

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"interpolation": self.interpolation})
        return config


@keras.saving.register_keras_serializable(package="spreid_tf")
class ResizeTo(keras.layers.Layer):
    """Bilinear resize of `(B, H, W, C)` images to a fixed `(height, width)`.

    Used instead of `keras.layers.Resizing`: Keras' image preprocessing layers
    default to `training=True` in `call`, and in a functional model that value
    leaks into the call context of the layers after them (batch norm then runs
    in training mode during inference).
    """

    def __init__(self, height: int, width: int, interpolation: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        self.height = int(height)
        self.width = int(width)
        self.interpolation = interpolation

    def call(self, inputs):
        return ops.image.resize(inputs, (self.height, self.width), interpolation=self.interpolation,
                                antialias=False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"height": self.height, "width": self.width, "interpolation": self.interpolation})
        return config
