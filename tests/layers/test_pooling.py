"""Chainer's pooling in Keras: zero-padded average pooling and ceil-mode max pooling, against numpy."""

import numpy as np
import pytest

from spreid_tf.layers import CeilModeMaxPooling2D, ZeroPaddedAveragePooling2D


def _average_reference(x, k, p):
    """Zeros added around; every k x k window summed and divided by k*k (Chainer, Caffe)."""
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, w, c = x.shape
    out = np.zeros((n, h + 2 * p - k + 1, w + 2 * p - k + 1, c))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[:, i, j] = padded[:, i:i + k, j:j + k].sum(axis=(1, 2)) / (k * k)
    return out


def _ceil_max_reference(x, k, s):
    """ceil((H - k) / s) + 1 windows a side, the last ones clipped to the input."""
    n, h, w, c = x.shape
    rows, cols = -(-(h - k) // s) + 1, -(-(w - k) // s) + 1
    out = np.zeros((n, rows, cols, c))
    for i in range(rows):
        for j in range(cols):
            out[:, i, j] = x[:, i * s:i * s + k, j * s:j * s + k].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("size,padding", [(3, 1), (5, 2)])
def test_zero_padded_average_pooling_counts_the_padding(size, padding):
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 3)).astype("float32")
    layer = ZeroPaddedAveragePooling2D(size, padding)
    got = np.asarray(layer(x))
    assert got.shape == layer.compute_output_shape(x.shape) == x.shape
    # Sums of k*k float32 terms of magnitude <= 4, in float32: well within 1e-5.
    np.testing.assert_allclose(got, _average_reference(x.astype("float64"), size, padding), atol=1e-5)
    assert got[0, 0, 0, 0] != pytest.approx(x[0, :padding + 1, :padding + 1, 0].mean())  # not Keras' "same"


@pytest.mark.parametrize("height,width", [(7, 6), (6, 9), (3, 4)])
def test_ceil_mode_max_pooling_is_chainer_cover_all(height, width):
    # Negative values: the padding must be -inf, not zero.
    x = np.random.default_rng(1).normal(-5.0, 1.0, size=(2, height, width, 2)).astype("float32")
    layer = CeilModeMaxPooling2D(3, 2)
    got = np.asarray(layer(x))
    expected = _ceil_max_reference(x, 3, 2)
    assert got.shape == expected.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_array_equal(got, expected)  # a max is exact


def test_pooling_layers_round_trip_their_config():
    for layer in (ZeroPaddedAveragePooling2D((5, 3), (2, 1), name="p"), CeilModeMaxPooling2D(3, 2, name="m")):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="at least the strides"):
        CeilModeMaxPooling2D(1, 2)
