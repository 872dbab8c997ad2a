"""ASPP: atrous spatial pyramid pooling, the SPReID authors' variant."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="spreid_tf")
class ASPP(keras.layers.Layer):
    """Atrous spatial pyramid pooling as in the SPReID authors' parsing network.

    Branches, each followed by batch norm and ReLU, concatenated in this order:
      - image pooling: global average, 1x1 conv (`pooling_filters`), broadcast back
        to the input grid;
      - a 1x1 conv (`pointwise_filters`);
      - one 3x3 conv per rate in `rates` (`atrous_filters` each).
    With the defaults the concatenation has 512 + 512 + 4 x 256 = 2048 channels,
    projected by a 1x1 conv (+ BN + ReLU) to `output_filters` (1024). The classifier
    (a 1x1 conv over the labels) is not part of this layer.

    Args:
        rates: dilation rates of the 3x3 branches (default 3, 6, 9, 12).
        pooling_filters, pointwise_filters, atrous_filters, output_filters: widths.
        epsilon: the batch norms' epsilon (Keras' default 1e-3; the authors' Chainer
            network: 2e-5).
    """

    def __init__(
        self,
        rates: tuple[int, ...] = (3, 6, 9, 12),
        pooling_filters: int = 512,
        pointwise_filters: int = 512,
        atrous_filters: int = 256,
        output_filters: int = 1024,
        epsilon: float = 1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        rates = tuple(int(r) for r in rates)
        if not rates or any(r < 1 for r in rates):
            raise ValueError(f"ASPP: rates must be positive integers, got {rates}")
        self.rates = rates
        self.pooling_filters = int(pooling_filters)
        self.pointwise_filters = int(pointwise_filters)
        self.atrous_filters = int(atrous_filters)
        self.output_filters = int(output_filters)
        self.epsilon = float(epsilon)

    def _conv_bn(self, filters: int, kernel: int, rate: int, name: str):
        conv = keras.layers.Conv2D(filters, kernel, padding="same", dilation_rate=rate, use_bias=False,
                                   dtype=self.dtype_policy, name=f"{name}_conv")
        bn = keras.layers.BatchNormalization(epsilon=self.epsilon, dtype=self.dtype_policy, name=f"{name}_bn")
        return conv, bn

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"ASPP expects (B, H, W, C) features with known C, got {input_shape}")
        channels = input_shape[-1]
        self.pool_conv, self.pool_bn = self._conv_bn(self.pooling_filters, 1, 1, "pool")
        self.pool_conv.build((input_shape[0], 1, 1, channels))
        self.pool_bn.build((input_shape[0], 1, 1, self.pooling_filters))
        self.pointwise_conv, self.pointwise_bn = self._conv_bn(self.pointwise_filters, 1, 1, "pointwise")
        self.pointwise_conv.build(input_shape)
        self.pointwise_bn.build(tuple(input_shape[:3]) + (self.pointwise_filters,))
        self.atrous = []
        for rate in self.rates:
            conv, bn = self._conv_bn(self.atrous_filters, 3, rate, f"rate{rate}")
            conv.build(input_shape)
            bn.build(tuple(input_shape[:3]) + (self.atrous_filters,))
            self.atrous.append((conv, bn))
        concat_channels = self.pooling_filters + self.pointwise_filters + len(self.rates) * self.atrous_filters
        self.project_conv, self.project_bn = self._conv_bn(self.output_filters, 1, 1, "project")
        self.project_conv.build(tuple(input_shape[:3]) + (concat_channels,))
        self.project_bn.build(tuple(input_shape[:3]) + (self.output_filters,))
        super().build(input_shape)

    def call(self, inputs, training=None):
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        pooled = ops.relu(self.pool_bn(self.pool_conv(pooled), training=training))
        # Broadcast the (B, 1, 1, F) image-level vector to every position.
        pooled = pooled * ops.ones_like(inputs[..., :1])
        branches = [pooled, ops.relu(self.pointwise_bn(self.pointwise_conv(inputs), training=training))]
        for conv, bn in self.atrous:
            branches.append(ops.relu(bn(conv(inputs), training=training)))
        x = ops.concatenate(branches, axis=-1)
        return ops.relu(self.project_bn(self.project_conv(x), training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3]) + (self.output_filters,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "rates": list(self.rates),
            "pooling_filters": self.pooling_filters,
            "pointwise_filters": self.pointwise_filters,
            "atrous_filters": self.atrous_filters,
            "output_filters": self.output_filters,
            "epsilon": self.epsilon,
        })
        return config
