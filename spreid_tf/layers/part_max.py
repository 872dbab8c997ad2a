"""PartMaxPooling: split SPReID's pooled vectors into foreground and max-over-parts."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="spreid_tf")
class PartMaxPooling(keras.layers.Layer):
    """`(B, 1 + P, C)` -> `[foreground (B, C), element-wise max over the P parts (B, C)]`.

    SPReID pools the re-id features once with each of its five maps (foreground,
    head, upper body, lower body, shoes). The foreground vector is kept as is;
    the four part vectors are max-ed element-wise into one.
    """

    def call(self, inputs):
        return [inputs[:, 0, :], ops.max(inputs[:, 1:, :], axis=1)]

    def compute_output_shape(self, input_shape):
        if input_shape[1] is not None and input_shape[1] < 2:
            raise ValueError(f"PartMaxPooling needs at least one part after the foreground, got {input_shape}")
        return [(input_shape[0], input_shape[2]), (input_shape[0], input_shape[2])]
