"""SemanticPooling: pool a feature map with soft (probability) maps."""

from __future__ import annotations

import keras
from keras import ops

from spreid_tf.layers.resize import resize_like

_RESIZE_MODES = ("maps", "features")


@keras.saving.register_keras_serializable(package="spreid_tf")
class SemanticPooling(keras.layers.Layer):
    """Weighted average pooling of features with K l1-normalised soft maps.

    Inputs are `[features, maps]` with features `(B, H, W, C)` and non-negative
    maps `(B, h, w, K)`. The two grids are brought together by bilinear
    resizing: by default the maps are resized to the feature grid
    (`resize="maps"`); SPReID instead upsamples the re-id activations to the
    parsing grid (`resize="features"`). Each map is then divided by its sum over
    the spatial positions, so the pooling is a weighted average:

        out[b, k, c] = sum_p m[b, p, k] * f[b, p, c] / (sum_p m[b, p, k] + epsilon)

    computed as one batched matmul `maps^T x features`. The layer computes in
    float32 (its default dtype policy) even under a mixed-precision global
    policy: sums over thousands of positions lose too much in float16.

    Args:
        resize: "maps" or "features": which input is resized to the other's grid.
        epsilon: added to each map's sum so an all-zero map pools to zeros.

    Returns:
        `(B, K, C)` pooled vectors.
    """

    def __init__(self, resize: str = "maps", epsilon: float = 1e-8, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if resize not in _RESIZE_MODES:
            raise ValueError(f"SemanticPooling: resize must be one of {_RESIZE_MODES}, got {resize!r}")
        self.resize = resize
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError("SemanticPooling expects two inputs [features (B,H,W,C), maps (B,h,w,K)], "
                             f"got input shape {input_shape}")
        features_shape, maps_shape = input_shape
        if len(features_shape) != 4 or len(maps_shape) != 4:
            raise ValueError("SemanticPooling expects rank-4 features (B,H,W,C) and maps (B,h,w,K), "
                             f"got {features_shape} and {maps_shape}")
        super().build(input_shape)

    def call(self, inputs):
        features, maps = inputs
        features = ops.cast(features, self.compute_dtype)
        maps = ops.cast(maps, self.compute_dtype)
        # resize_like: the grids may only be known at run time (tf.function, (None, None, 3) inputs).
        if self.resize == "maps":
            maps = resize_like(maps, features)
        else:
            features = resize_like(features, maps)
        batch = ops.shape(features)[0]
        channels = ops.shape(features)[-1]
        num_maps = ops.shape(maps)[-1]
        features = ops.reshape(features, (batch, -1, channels))
        maps = ops.reshape(maps, (batch, -1, num_maps))
        maps = maps / (ops.sum(maps, axis=1, keepdims=True) + self.epsilon)
        return ops.matmul(ops.transpose(maps, (0, 2, 1)), features)

    def compute_output_shape(self, input_shape):
        features_shape, maps_shape = input_shape
        return (features_shape[0], maps_shape[-1], features_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"resize": self.resize, "epsilon": self.epsilon})
        return config
