"""ResizeLike: bilinear resize of one tensor to the spatial size of another."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


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
        # tf.shape, not ops.shape: keras.ops.image.resize cannot take a size that is only
        # known at run time inside a tf.function (models built with (None, None, 3)).
        return tf.image.resize(x, tf.shape(reference)[1:3], method=self.interpolation)

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
