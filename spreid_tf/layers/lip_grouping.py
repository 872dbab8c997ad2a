"""Group LIP's 20 label probabilities into SPReID's five soft maps."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from spreid_tf import lip


def group_lip_probabilities(probabilities):
    """`(..., 20)` LIP softmax probabilities -> `(..., 5)` maps.

    Channels, in `spreid_tf.lip.GROUP_NAMES` order: foreground (1 - p(background)),
    head, upper body, lower body, shoes, each the sum of its labels' probabilities
    (the authors' sets, `spreid_tf.lip.PART_GROUPS`). Works on numpy arrays and
    tensors alike.
    """
    if probabilities.shape[-1] != lip.NUM_CLASSES:
        raise ValueError(f"group_lip_probabilities expects {lip.NUM_CLASSES} LIP channels in the last axis, "
                         f"got shape {tuple(probabilities.shape)}")
    probabilities = ops.convert_to_tensor(probabilities)
    matrix = ops.convert_to_tensor(np.asarray(lip.group_matrix()), dtype=probabilities.dtype)
    foreground = 1.0 - probabilities[..., lip.BACKGROUND:lip.BACKGROUND + 1]
    parts = ops.matmul(probabilities, matrix)
    return ops.concatenate([foreground, parts], axis=-1)


@keras.saving.register_keras_serializable(package="spreid_tf")
class GroupLIPProbabilities(keras.layers.Layer):
    """Layer form of `group_lip_probabilities` (float32 by default: these maps weight a pooling)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        return group_lip_probabilities(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (lip.NUM_GROUPS,)
