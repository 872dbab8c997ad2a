"""tf.distribute strategies for training: one device, all local GPUs, or several workers.

- "default": the default strategy (one device: the first GPU, else the CPU).
- "mirrored": `MirroredStrategy` over every local GPU (synchronous data parallelism;
  on a machine without GPUs it uses the CPU, or the logical CPUs a test configured).
- "multi_worker": `MultiWorkerMirroredStrategy`; each worker is one process started
  with the same command and its own `TF_CONFIG`, e.g. for worker 0 of two:

      TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                  "task": {"type": "worker", "index": 0}}'

  Worker 0 (or the "chief" task, if the cluster has one) writes checkpoints,
  TensorBoard events and the final model into model_dir; the other workers write
  their (identical) checkpoints into a private scratch folder that is deleted
  afterwards, because every worker must take part in a save. model_dir must be on a
  filesystem that every worker can read (for resuming).

Keras 3's `Model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585),
so training uses the custom loop in `loop.py` for every strategy.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def create_strategy(name: str = "default") -> tf.distribute.Strategy:
    """Returns the strategy called `name` (one of STRATEGIES).

    "multi_worker" reads the cluster from the TF_CONFIG environment variable and
    must be created before any other TensorFlow op runs in the process.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                             "(cluster and task of this worker); see spreid_tf/training/strategy.py")
        json.loads(os.environ["TF_CONFIG"])  # fail early on a malformed TF_CONFIG
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; expected one of {STRATEGIES}")


def task_type_and_id(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """(task type, task id) of this process; (None, 0) outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the process that writes model_dir (the only one outside a cluster)."""
    task_type, task_id = task_type_and_id(strategy)
    if task_type is None or task_type == "chief":
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    # Without a "chief" task, worker 0 plays the chief (the TensorFlow convention).
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def is_chief_from_env(strategy_name: str) -> bool:
    """Like `is_chief`, from TF_CONFIG alone (before the strategy exists)."""
    if strategy_name != "multi_worker" or "TF_CONFIG" not in os.environ:
        return True
    tf_config = json.loads(os.environ["TF_CONFIG"])
    task = tf_config.get("task", {})
    task_type, task_id = task.get("type"), int(task.get("index", 0))
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in tf_config.get("cluster", {})


def write_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """model_dir for the chief, a private scratch folder inside it for other workers."""
    if is_chief(strategy):
        return model_dir
    task_type, task_id = task_type_and_id(strategy)
    return os.path.join(model_dir, f".scratch-{task_type}-{task_id}")


def check_global_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """Returns the per-replica batch size; the global one must divide evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"the global batch size {global_batch_size} does not divide over {replicas} replicas; "
            f"use a multiple of {replicas} (the paper's 15 suits 1, 3, 5 or 15 devices, 16 suits 2, 4 or 8)")
    return global_batch_size // replicas


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of `model`, nested models included."""
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
    return found


def set_synchronized_batch_norm(model: keras.Model, synchronized: bool) -> int:
    """Makes the trainable BatchNormalization layers compute batch statistics over all replicas.

    With batch 15 split over several GPUs, per-replica statistics of 2-8 images
    would be far noisier than the single-GPU training the paper did; synchronised
    statistics make a multi-device step compute what one device would. Frozen
    (non-trainable) layers run in inference mode and are left alone.

    Returns:
        The number of layers changed.
    """
    changed = 0
    for layer in batch_norm_layers(model):
        if layer.trainable and layer.synchronized != synchronized:
            layer.synchronized = synchronized
            changed += 1
    return changed
