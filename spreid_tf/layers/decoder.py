"""DeepLabDecoder: DeepLabv3+'s decoder, refining the ASPP output with stride-4 features."""

from __future__ import annotations

import keras
from keras import ops

from spreid_tf.layers.resize import resize_like


@keras.saving.register_keras_serializable(package="spreid_tf")
class DeepLabDecoder(keras.layers.Layer):
    """`[x (B, h, w, C), low_level (B, H, W, C')]` -> `(B, H, W, filters)` (Chen et al., ECCV 2018).

    The low-level features (the backbone at output stride 4) are reduced by a 1x1 conv
    to `low_level_filters` channels (+ BN + ReLU); `x` (the ASPP output) is upsampled
    bilinearly to their grid; the concatenation goes through two 3x3 convs of
    `filters` channels, each with BN and ReLU. The classifier follows outside.
    """

    def __init__(self, low_level_filters: int = 48, filters: int = 256, **kwargs):
        super().__init__(**kwargs)
        if int(low_level_filters) < 1 or int(filters) < 1:
            raise ValueError(f"DeepLabDecoder: filter counts must be positive, got {low_level_filters}, {filters}")
        self.low_level_filters = int(low_level_filters)
        self.filters = int(filters)

    def _conv_bn(self, filters: int, kernel: int, name: str):
        conv = keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False, dtype=self.dtype_policy,
                                   name=f"{name}_conv")
        return conv, keras.layers.BatchNormalization(dtype=self.dtype_policy, name=f"{name}_bn")

    def build(self, input_shape):
        x_shape, low_shape = input_shape
        if len(x_shape) != 4 or len(low_shape) != 4 or x_shape[-1] is None or low_shape[-1] is None:
            raise ValueError(f"DeepLabDecoder expects two (B, H, W, C) inputs with known C, got {input_shape}")
        grid = tuple(low_shape[:3])
        self.reduce_conv, self.reduce_bn = self._conv_bn(self.low_level_filters, 1, "reduce")
        self.reduce_conv.build(low_shape)
        self.reduce_bn.build(grid + (self.low_level_filters,))
        self.refine = []
        channels = x_shape[-1] + self.low_level_filters
        for i in range(2):
            conv, bn = self._conv_bn(self.filters, 3, f"refine{i}")
            conv.build(grid + (channels,))
            bn.build(grid + (self.filters,))
            self.refine.append((conv, bn))
            channels = self.filters
        super().build(input_shape)

    def call(self, inputs, training=None):
        x, low_level = inputs
        low_level = ops.relu(self.reduce_bn(self.reduce_conv(low_level), training=training))
        # resize_like: the grid may be known only at run time (tf.function, (None, None, 3) inputs).
        x = ops.cast(resize_like(x, low_level), low_level.dtype)
        x = ops.concatenate([x, low_level], axis=-1)
        for conv, bn in self.refine:
            x = ops.relu(bn(conv(x), training=training))
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1][:3]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update({"low_level_filters": self.low_level_filters, "filters": self.filters})
        return config
