"""ImagePreprocessing: raw RGB in [0, 255] -> what each ImageNet backbone expects."""

from __future__ import annotations

import keras
from keras import ops

# keras.applications' "caffe" mode (ResNet): BGR order, ImageNet mean subtracted.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
MODES = ("inception", "caffe")


@keras.saving.register_keras_serializable(package="spreid_tf")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw RGB images (any numeric dtype, values 0-255) to a backbone's input range.

    Modes (same arithmetic as `keras.applications.*.preprocess_input`):
        "inception": x / 127.5 - 1, range [-1, 1] (InceptionV3).
        "caffe": RGB -> BGR, minus the ImageNet channel means (ResNet-50/152).
    Putting this inside the model means SavedModels and pipelines take raw images.
    """

    def __init__(self, mode: str = "inception", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"ImagePreprocessing: mode must be one of {MODES}, got {mode!r}")
        self.mode = mode

    def build(self, input_shape):
        if input_shape[-1] != 3:
            raise ValueError(f"{self.name}: expected RGB images with 3 channels in the last axis, "
                             f"got input shape {tuple(input_shape)}")
        super().build(input_shape)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "inception":
            return x / 127.5 - 1.0
        mean = ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=self.compute_dtype)
        return ops.flip(x, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
