"""Pieces shared by the re-id and the parsing runs: precision, strategy checks, saving."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator

import keras
import tensorflow as tf

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
