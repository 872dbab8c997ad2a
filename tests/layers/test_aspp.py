import keras
import numpy as np
import pytest

from spreid_tf.layers import ASPP


def _reference_aspp(channels, rates, widths):
    """The same ASPP assembled from stock Keras layers (independent of the layer's code)."""
    pool_f, point_f, atrous_f, out_f = widths
    inputs = keras.Input((None, None, channels))
    layers = []

    def conv_bn_relu(x, filters, kernel, rate=1):
        conv = keras.layers.Conv2D(filters, kernel, padding="same", dilation_rate=rate, use_bias=False)
        bn = keras.layers.BatchNormalization()
        layers.extend([conv, bn])
        return keras.layers.ReLU()(bn(conv(x)))

    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(inputs)
    pooled = conv_bn_relu(pooled, pool_f, 1)
    ones = keras.layers.Lambda(lambda t: keras.ops.ones_like(t[..., :1]))(inputs)
    pooled = keras.layers.Multiply()([pooled, ones])
    branches = [pooled, conv_bn_relu(inputs, point_f, 1)]
    branches += [conv_bn_relu(inputs, atrous_f, 3, rate) for rate in rates]
    out = conv_bn_relu(keras.layers.Concatenate()(branches), out_f, 1)
    return keras.Model(inputs, out), layers


def _randomise(layer, rng):
    layer.set_weights([rng.normal(0.5, 0.2, w.shape).astype("float32") if "variance" not in w.path
                       else rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.weights])


def test_matches_stock_keras_assembly():
    rates, widths = (1, 2, 3), (4, 5, 3, 6)
    layer = ASPP(rates=rates, pooling_filters=4, pointwise_filters=5, atrous_filters=3, output_filters=6)
    x = np.random.default_rng(0).normal(size=(2, 7, 5, 8)).astype("float32")
    out = layer(x)
    assert out.shape == (2, 7, 5, 6)
    _randomise(layer, np.random.default_rng(1))
    reference, ref_layers = _reference_aspp(8, rates, widths)
    sublayers = [layer.pool_conv, layer.pool_bn, layer.pointwise_conv, layer.pointwise_bn]
    for conv, bn in layer.atrous:
        sublayers += [conv, bn]
    sublayers += [layer.project_conv, layer.project_bn]
    for ours, theirs in zip(sublayers, ref_layers, strict=True):
        theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(np.asarray(layer(x, training=False)), np.asarray(reference(x, training=False)),
                               rtol=1e-4, atol=1e-4)


def test_default_widths_follow_the_authors():
    layer = ASPP()
    out = layer(np.zeros((1, 4, 3, 16), "float32"))
    assert out.shape == (1, 4, 3, 1024)
    assert layer.rates == (3, 6, 9, 12)
    # 512 (pooling) + 512 (1x1) + 4 x 256 (atrous) = 2048 channels into the projection.
    assert tuple(layer.project_conv.kernel.shape) == (1, 1, 2048, 1024)
    assert [tuple(conv.dilation_rate) for conv, _ in layer.atrous] == [(r, r) for r in (3, 6, 9, 12)]


def test_config_round_trip_and_bad_rates():
    layer = ASPP(rates=(2, 4), output_filters=32, name="aspp")
    clone = ASPP.from_config(layer.get_config())
    assert clone.rates == (2, 4) and clone.output_filters == 32 and clone.name == "aspp"
    with pytest.raises(ValueError, match="rates must be positive"):
        ASPP(rates=(0, 3))
