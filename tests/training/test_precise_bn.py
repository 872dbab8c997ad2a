"""Precise batch norm against a numpy computation of the population statistics."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from spreid_tf.training.precise_bn import batch_norm_layers, recompute_batch_norm_statistics

# float32 unit roundoff (round to nearest).
U32 = 2.0 ** -24


def _gamma(n):
    """Higham's gamma_n = n u / (1 - n u): the relative error of n float32 roundings in a row."""
    return n * U32 / (1 - n * U32)


def _exact_statistics_and_bounds(conv_layer, batches):
    """The population mean and variance of `conv_layer`'s outputs over `batches`, in float64 from the
    float32 inputs and weights, and how far the float32 computation can be from them, per channel.

    Error bounds (first order; doubled at the end to cover the dropped second-order terms, which
    are ~gamma_n of them):
    - a convolution output is 27 products, 26 additions and the bias: within gamma_28 A of exact,
      A = the same sum over absolute values (a direct convolution, which TensorFlow's CPU kernels use
      for float32; Winograd would need another bound);
    - tf.nn.moments (batch norm in training mode): the mean of the n outputs of a batch is
      n - 1 additions and a division, within gamma_n mean|x| (+ mean of the outputs' errors); the
      variance is the mean of (x - mean)^2 (two roundings a term, n more for the mean): within
      gamma_{n+2} var + dm^2, plus 2 mean(|x - m| dx) from the outputs' errors;
    - precise_bn combines the batches in float64 (negligible) and stores float32 (u |value|).
    """
    kernel, bias = (np.asarray(w, np.float64) for w in conv_layer.weights)
    means, variances, mean_errors, variance_errors = [], [], [], []
    for batch in batches:
        x64 = np.asarray(batch, np.float64)
        exact = tf.nn.conv2d(x64, kernel, 1, "VALID").numpy() + bias
        size = tf.nn.conv2d(np.abs(x64), np.abs(kernel), 1, "VALID").numpy() + np.abs(bias)
        x = exact.reshape(-1, exact.shape[-1])
        dx = _gamma(kernel[..., 0].size + 1) * size.reshape(x.shape)
        n = x.shape[0]
        m = x.mean(axis=0)
        dm = _gamma(n) * np.abs(x).mean(axis=0) + dx.mean(axis=0)
        v = x.var(axis=0)
        dv = _gamma(n + 2) * v + dm ** 2 + 2 * (np.abs(x - m) * dx).mean(axis=0)
        means.append(m), variances.append(v), mean_errors.append(dm), variance_errors.append(dv)
    means, variances = np.array(means), np.array(variances)
    mean, spread = means.mean(axis=0), np.abs(means - means.mean(axis=0))
    variance = variances.mean(axis=0) + means.var(axis=0)
    mean_error = np.mean(mean_errors, axis=0)
    variance_error = np.mean(variance_errors, axis=0) + 2 * np.mean(spread * (np.array(mean_errors) + mean_error),
                                                                   axis=0)
    return mean, variance, 2 * mean_error + U32 * np.abs(mean), 2 * variance_error + U32 * variance


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
    # position of every batch (variance: biased, as batch norm uses), within the float32 bounds.
    mean, variance, mean_error, variance_error = _exact_statistics_and_bounds(model.get_layer("conv"), batches)
    bn = model.get_layer("bn")
    assert np.all(np.abs(np.asarray(bn.moving_mean, np.float64) - mean) <= mean_error)
    assert np.all(np.abs(np.asarray(bn.moving_variance, np.float64) - variance) <= variance_error)
    assert bn.momentum == pytest.approx(0.99)
    for before, after in zip(frozen_before, model.get_layer("frozen").get_layer("frozen_bn").weights):
        np.testing.assert_array_equal(before, np.array(after))


def test_num_batches_limits_and_empty_data_is_an_error():
    model, conv = _model()
    rng = np.random.default_rng(1)
    batches = [(rng.normal(0, 1, (2, 6, 6, 3)).astype("float32"), None) for _ in range(4)]
    assert recompute_batch_norm_statistics(model, batches, num_batches=1) == 1
    mean, _, mean_error, _ = _exact_statistics_and_bounds(model.get_layer("conv"), [batches[0][0]])
    assert np.all(np.abs(np.asarray(model.get_layer("bn").moving_mean, np.float64) - mean) <= mean_error)
    assert recompute_batch_norm_statistics(model, batches, num_batches=0) == 0
    with pytest.raises(ValueError, match="no batch"):
        recompute_batch_norm_statistics(model, [], num_batches=3)
