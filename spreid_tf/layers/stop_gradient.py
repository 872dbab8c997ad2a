"""StopGradient: an explicit wall between a frozen branch and the trained model."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="spreid_tf")
class StopGradient(keras.layers.Layer):
    """Identity whose gradient is zero (no gradient reaches what comes before it).

    Freezing the parsing branch (`trainable = False`) keeps its weights out of the
    optimizer; this layer also keeps back-propagation from computing gradients
    through it at all.
    """

    def call(self, inputs):
        return ops.stop_gradient(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape
