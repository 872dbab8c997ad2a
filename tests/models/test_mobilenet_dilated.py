"""Atrous MobileNetV2: the a-trous algorithm is exact; sampled on the plain grid it is the plain network."""

import keras
import numpy as np
import pytest

from spreid_tf.models import build_backbone, build_dilated_mobilenet_v2
from spreid_tf.models.backbones import feature_channels

SHAPE = (128, 64, 3)


@pytest.fixture(scope="module")
def plain_and_weights(tmp_path_factory):
    keras.utils.set_random_seed(0)
    plain = build_dilated_mobilenet_v2(SHAPE, output_stride=32)
    path = str(tmp_path_factory.mktemp("weights") / "plain.weights.h5")
    plain.save_weights(path)
    return plain, path


@pytest.mark.parametrize("output_stride, offset", [(16, 1), (8, 3)])
def test_dilated_network_on_the_plain_grid_equals_the_plain_network(plain_and_weights, output_stride, offset):
    plain, path = plain_and_weights
    dilated = build_dilated_mobilenet_v2(SHAPE, weights=path, output_stride=output_stride)
    x = np.random.default_rng(1).uniform(0, 255, (2,) + SHAPE).astype("float32")
    expected = np.asarray(plain(x, training=False))
    got = np.asarray(dilated(x, training=False))
    step = 32 // output_stride
    assert got.shape == (2, SHAPE[0] // output_stride, SHAPE[1] // output_stride, 1280)
    # keras pads a stride-2 depthwise conv of an even grid by (0, 1): plain cell i is centred on
    # input cell step * i + step - 1 of the finer grid, which the a-trous network computes exactly
    # (every later kernel reads only those cells). Only summation order differs: float32 rounding
    # of sums over at most 3 x 3 x 1280 terms, a few 1e-7 relative each, through 17 blocks.
    sampled = got[:, offset::step, offset::step]
    np.testing.assert_allclose(sampled, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    for a, b in zip(plain.weights, dilated.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_plan_of_strides_and_rates():
    model = build_dilated_mobilenet_v2(output_stride=8)
    depthwise = {layer.name: layer for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)}
    assert tuple(depthwise["block_3_depthwise"].strides) == (2, 2)
    assert tuple(depthwise["block_6_depthwise"].strides) == (1, 1)
    assert tuple(depthwise["block_6_depthwise"].dilation_rate) == (1, 1)
    assert all(tuple(depthwise[f"block_{i}_depthwise"].dilation_rate) == (2, 2) for i in range(7, 14))
    assert all(tuple(depthwise[f"block_{i}_depthwise"].dilation_rate) == (4, 4) for i in range(14, 17))
    with pytest.raises(ValueError, match="output_stride"):
        build_dilated_mobilenet_v2(output_stride=4)
    with pytest.raises(ValueError, match="at least 32"):
        build_dilated_mobilenet_v2((24, 64, 3))


def test_reid_backbones():
    x = np.zeros((1, 128, 80, 3), "float32")
    # Any-size inputs: keras pads a stride-2 conv by (0, 1) whatever the grid, so 5 columns give 2.
    assert build_backbone("mobilenet_v2")(x).shape == (1, 4, 2, 1280)
    assert build_backbone("mobilenet_v2_os16")(x).shape == (1, 8, 5, 1280)
    assert build_backbone("mobilenet_v2_c3")(x).shape == (1, 16, 10, 192)  # stride 8, block 6's expansion
    assert feature_channels("mobilenet_v2_os16") == 1280 and feature_channels("inception_v3_os16") == 2048
    assert feature_channels("mobilenet_v2_c3") == 192
