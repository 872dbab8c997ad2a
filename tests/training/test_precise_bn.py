"""Precise batch norm against a numpy computation of the population statistics."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from spreid_tf.training.precise_bn import batch_norm_layers, recompute_batch_norm_statistics


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    frozen = keras.Sequential([keras.layers.Conv2D(2, 1), keras.layers.BatchNormalization(name="frozen_bn")],
                              name="frozen")
    frozen.trainable = False
    conv = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(conv)
    x = keras.layers.ReLU()(x)
    outputs = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(x),
                                          keras.layers.GlobalAveragePooling2D()(frozen(inputs))])
    return keras.Model(inputs, outputs), keras.Model(inputs, conv)


def test_statistics_are_the_population_statistics_of_the_batches():
    model, conv = _model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0 * k, 1.0 + k, (4, 6, 6, 3)).astype("float32") for k in range(3)]
    frozen_before = [np.array(w) for w in model.get_layer("frozen").get_layer("frozen_bn").weights]
    assert [layer.name for layer in batch_norm_layers(model)] == ["bn"]

    assert recompute_batch_norm_statistics(model, iter(batches), num_batches=10) == 3
    # The BN layer's input is the (fixed) convolution's output: its statistics over every
    # position of every batch, in float64 (variance: biased, as batch norm uses).
    values = np.concatenate([np.asarray(conv(b), np.float64).reshape(-1, 4) for b in batches])
    bn = model.get_layer("bn")
    # float32 forward passes over ~300 values of magnitude ~10: well inside 1e-4 relative.
    np.testing.assert_allclose(np.asarray(bn.moving_mean), values.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), values.var(axis=0), rtol=1e-4, atol=1e-5)
    assert bn.momentum == pytest.approx(0.99)
    for before, after in zip(frozen_before, model.get_layer("frozen").get_layer("frozen_bn").weights):
        np.testing.assert_array_equal(before, np.array(after))


def test_num_batches_limits_and_empty_data_is_an_error():
    model, conv = _model()
    rng = np.random.default_rng(1)
    batches = [(rng.normal(0, 1, (2, 6, 6, 3)).astype("float32"), None) for _ in range(4)]
    assert recompute_batch_norm_statistics(model, batches, num_batches=1) == 1
    first = np.asarray(conv(batches[0][0]), np.float64).reshape(-1, 4)
    np.testing.assert_allclose(np.asarray(model.get_layer("bn").moving_mean), first.mean(axis=0), rtol=1e-4,
                               atol=1e-5)
    assert recompute_batch_norm_statistics(model, batches, num_batches=0) == 0
    with pytest.raises(ValueError, match="no batch"):
        recompute_batch_norm_statistics(model, [], num_batches=3)
