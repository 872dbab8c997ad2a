"""Independent numpy references used by the model and layer tests."""

from __future__ import annotations

import numpy as np


def _interp(out_size: int, in_size: int):
    # TF2 bilinear resize, half-pixel centres, no antialiasing.
    src = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    low = np.floor(src)
    frac = src - low
    lo = np.clip(low, 0, in_size - 1).astype(int)
    hi = np.clip(low + 1, 0, in_size - 1).astype(int)
    return lo, hi, frac


def bilinear_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(B, H, W, C) -> (B, h, w, C) with tf.image.resize(method='bilinear') semantics."""
    x = np.asarray(x, np.float64)
    y0, y1, fy = _interp(size[0], x.shape[1])
    x0, x1, fx = _interp(size[1], x.shape[2])
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bottom = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]


def semantic_pooling(features: np.ndarray, maps: np.ndarray, epsilon: float = 1e-8) -> np.ndarray:
    """Per-sample, per-map loops: sum_p m_p f_p / (sum_p m_p + eps); grids must match."""
    features = np.asarray(features, np.float64)
    maps = np.asarray(maps, np.float64)
    b, h, w, c = features.shape
    k = maps.shape[-1]
    out = np.zeros((b, k, c))
    for i in range(b):
        for j in range(k):
            weights = maps[i, :, :, j]
            total = weights.sum() + epsilon
            for y in range(h):
                for x in range(w):
                    out[i, j] += weights[y, x] * features[i, y, x] / total
    return out


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
