"""Pieces shared by the re-id and the parsing runs: precision, strategy checks, saving."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator

import keras
import tensorflow as tf

from spreid_tf.training import optimizers, precise_bn, step
from spreid_tf.training import strategy as strategy_lib
from spreid_tf.training.config import RuntimeConfig

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def precision_policy(mixed_precision: bool) -> Iterator[None]:
    """Sets keras' global dtype policy for the models built inside; restores it afterwards."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def create_checked_strategy(runtime: RuntimeConfig, global_batch_size: int) -> tf.distribute.Strategy:
    """Creates the run's strategy and checks the batch size and XLA against it."""
    strategy = strategy_lib.create_strategy(runtime.strategy)
    per_replica = strategy_lib.check_global_batch_size(global_batch_size, strategy)
    replicas = strategy.num_replicas_in_sync
    if runtime.jit_compile and replicas > 1 and runtime.sync_batchnorm:
        # Synchronized batch norm all-reduces inside the forward pass; tf.distribute
        # cannot put that sync point inside the XLA-compiled function.
        raise ValueError(f"--jit_compile with {replicas} replicas needs --nosync_batchnorm "
                         "(synchronized batch norm cannot run inside an XLA-compiled function)")
    logger.info("Strategy %s: %d replica(s), global batch %d (%d per replica)", type(strategy).__name__,
                replicas, global_batch_size, per_replica)
    return strategy


def seed_everything(seed: int | None) -> None:
    """Seeds Python, NumPy and TensorFlow (weights initialisation) when a seed is given."""
    if seed is not None:
        keras.utils.set_random_seed(seed)


def save_model(model: keras.Model, path: str, strategy: tf.distribute.Strategy) -> str | None:
    """Saves `model` as a .keras file; only the chief keeps it (every worker must save).

    Synchronized batch norm is switched off in the saved copy: it only matters
    while training over several replicas.

    Returns:
        `path` on the chief, None on other workers.
    """
    changed = strategy_lib.set_synchronized_batch_norm(model, False)
    try:
        if strategy_lib.is_chief(strategy):
            tf.io.gfile.makedirs(os.path.dirname(path) or ".")
            model.save(path)
            logger.info("Saved %s", path)
            return path
        scratch = strategy_lib.write_dir(os.path.dirname(path), strategy)
        tf.io.gfile.makedirs(scratch)
        model.save(os.path.join(scratch, os.path.basename(path)))
        tf.io.gfile.rmtree(scratch)
        return None
    finally:
        if changed:
            strategy_lib.set_synchronized_batch_norm(model, True)


def write_json(document: dict, path: str, strategy: tf.distribute.Strategy) -> None:
    """Writes a JSON file from the chief only."""
    if strategy_lib.is_chief(strategy):
        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(document, f, indent=2)


def log_learning_rates(groups, opt) -> None:
    """Logs each group's effective starting rate, its multiplier, schedule, warm-up and clipping."""
    parts = [f"{g.name} ({len(g.variables)} variables) {opt.learning_rate * g.lr_multiplier:.4g} "
             f"(x{g.lr_multiplier:g})" for g in groups]
    warmup = (f", linear warm-up over {opt.warmup_steps} steps from x{opt.warmup_factor:g}"
              if opt.warmup_steps else ", no warm-up")
    logger.info("Learning rates: %s; %s schedule%s; global clip norm %s; weight decay %g", "; ".join(parts),
                opt.schedule, warmup, opt.clip_norm or "off", opt.weight_decay)


def make_trainer(strategy: tf.distribute.Strategy, model: keras.Model, opt, runtime: RuntimeConfig,
                 head_layers, loss_fn):
    """Variable groups (one SGD each; `head_layers` get `opt.head_lr_multiplier`) and the train step.

    Args:
        opt: an `OptimizationConfig`.
        head_layers: names of the layers in the faster learning-rate group.
        loss_fn: `step.reid_loss` or `step.parsing_loss`.
    """
    with strategy.scope():
        if runtime.sync_batchnorm and strategy.num_replicas_in_sync > 1:
            strategy_lib.set_synchronized_batch_norm(model, True)
        groups = optimizers.make_variable_groups(
            model, base_lr=opt.learning_rate, total_steps=opt.total_steps, schedule=opt.schedule,
            num_decays=opt.num_decays, decay_rate=opt.decay_rate, power=opt.poly_power,
            momentum=opt.momentum, nesterov=opt.nesterov, weight_decay=opt.weight_decay,
            head_layers=head_layers, head_lr_multiplier=opt.head_lr_multiplier,
            warmup_steps=opt.warmup_steps, warmup_factor=opt.warmup_factor)
    log_learning_rates(groups, opt)
    return step.Trainer(strategy, model, groups, loss_fn, clip_norm=opt.clip_norm,
                        mixed_precision=runtime.mixed_precision, jit_compile=runtime.jit_compile)


def recompute_batch_norm(model: keras.Model, dataset: tf.data.Dataset, num_batches: int) -> None:
    """Precise batch norm after training (`training.precise_bn`), from a non-distributed `dataset`.

    Every worker runs the same seeded batches, so all copies of the model get the
    same statistics.
    """
    if num_batches > 0:
        start = time.perf_counter()
        used = precise_bn.recompute_batch_norm_statistics(model, dataset, num_batches)
        logger.info("Batch-norm statistics recomputed from %d training batches (%.1f s)", used,
                    time.perf_counter() - start)
