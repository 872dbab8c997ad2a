"""Precise batch-norm statistics: recompute the moving averages from the data after training.

Batch norm trains with the statistics of each batch and predicts with moving
averages (`moving = momentum * moving + (1 - momentum) * batch`, keras' momentum
0.99). After a short run from random weights those averages still carry much of
their initial values (mean 0, variance 1; after 150 steps 0.99^150 = 22% of the
initial value is left) and describe weights that changed since: the model scores
far worse in inference mode than in training mode. The parsing model trained for
the demo predicted background everywhere for exactly this reason.

`recompute_batch_norm_statistics` does what fast-reid's PreciseBN hook does (Wu &
Johnson, "Rethinking Batch in BatchNorm", 2021): it runs `num_batches` batches
through the model in training mode with the weights fixed and sets every trainable
batch-norm layer's moving mean and variance to the population statistics of those
batches: the mean of the batch means, and the mean of the batch variances plus the
variance of the batch means (exact for equal-sized batches). Frozen layers
(SPReID's parsing branch) are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer in `model` (nested models and layers included) that updates
    its statistics in training mode: trainable, and not inside a frozen sub-model."""
    found, seen = [], set()

    def visit(layer, frozen: bool):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        frozen = frozen or not layer.trainable
        if isinstance(layer, keras.layers.BatchNormalization):
            if not frozen:
                found.append(layer)
            return
        for child in layer._flatten_layers(include_self=False, recursive=False):
            visit(child, frozen)

    visit(model, False)
    return found


def recompute_batch_norm_statistics(model: keras.Model, batches: Iterable, num_batches: int) -> int:
    """Sets the moving statistics of `model`'s trainable batch-norm layers from `num_batches` batches.

    Args:
        model: a Keras model; its weights are not changed, only the moving averages.
        batches: yields images or (images, labels) tuples (labels are ignored),
            e.g. the training pipeline.
        num_batches: batches to average over (fewer if `batches` runs out first).

    Returns:
        The number of batches used (0: nothing changed, the model has no such layer
        or there was no batch).
    """
    layers = batch_norm_layers(model)
    if not layers or num_batches < 1:
        return 0
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        # With momentum 0 a training-mode call leaves exactly the batch's statistics behind.
        layer.momentum = 0.0
    try:
        forward = tf.function(lambda images: model(images, training=True), reduce_retracing=True)
        sums = [[np.zeros(layer.moving_mean.shape, np.float64) for _ in range(3)] for layer in layers]
        used = 0
        for batch in batches:
            if used >= num_batches:
                break
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            forward(images)
            for layer, (mean_sum, square_sum, var_sum) in zip(layers, sums):
                mean = np.asarray(layer.moving_mean.numpy(), np.float64)
                mean_sum += mean
                square_sum += mean * mean
                var_sum += np.asarray(layer.moving_variance.numpy(), np.float64)
            used += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if used == 0:
        raise ValueError("recompute_batch_norm_statistics: the data gave no batch")
    for layer, (mean_sum, square_sum, var_sum) in zip(layers, sums):
        mean = mean_sum / used
        variance = var_sum / used + np.maximum(square_sum / used - mean * mean, 0.0)
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
    logger.info("Recomputed the statistics of %d batch-norm layers from %d batches", len(layers), used)
    return used
