"""Runs the real train step under a tf.distribute strategy in a fresh process (tests only).

TensorFlow fixes its devices when it initialises, so the logical CPU devices of the
multi-device test (and TF_CONFIG of the multi-worker test) need a new process:

    python distributed_script.py killable MODEL_DIR
        a long single-device run of the real train loop, checkpointing every
        KILLABLE_CHECKPOINT_EVERY steps, for the test to SIGKILL mid-way
    python distributed_script.py mirrored OUT.npz
        one device vs MirroredStrategy over 2 logical CPUs, same data and weights
    TF_CONFIG=... python distributed_script.py worker OUT.npz DATA_DIR MODEL_DIR
        one worker of a MultiWorkerMirroredStrategy run of the real train loop

Both write their results (losses, weights) to OUT.npz.
"""

from __future__ import annotations

import glob
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from training_helpers import SIZE, random_batches, tiny_model  # noqa: E402

GLOBAL_BATCH = 4


def _run_steps(strategy: tf.distribute.Strategy, num_steps: int, clip_norm: float):
    from spreid_tf.training import optimizers, step
    from spreid_tf.training import strategy as strategy_lib

    images, labels = random_batches()
    with strategy.scope():
        model = tiny_model()
        if strategy.num_replicas_in_sync > 1:
            strategy_lib.set_synchronized_batch_norm(model, True)
        groups = optimizers.make_variable_groups(
            model, base_lr=0.05, total_steps=10, head_layers=optimizers.REID_CLASSIFIER_LAYERS,
            head_lr_multiplier=10.0)
    trainer = step.Trainer(strategy, model, groups, step.reid_loss, clip_norm=clip_norm)

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        # One input pipeline feeds the replicas consecutive per-replica batches, so
        # together they see exactly the single-device global batch.
        per_replica = ctx.get_per_replica_batch_size(GLOBAL_BATCH)
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(per_replica, drop_remainder=True)

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    outputs = [trainer.train_step(iterator) for _ in range(num_steps)]
    losses = [float(o["loss_sum"]) / float(o["count"]) for o in outputs]
    norms = [float(o["grad_norm"]) for o in outputs]
    return losses, norms, {v.path: v.numpy() for v in model.weights}


def mirrored(out: str) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    # A small clipping norm, so that the global clipping is exercised too.
    single = _run_steps(tf.distribute.OneDeviceStrategy("/cpu:0"), 2, clip_norm=0.5)
    mirrored_ = _run_steps(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), 2, clip_norm=0.5)
    result = {"single_loss": single[0], "mirrored_loss": mirrored_[0],
              "single_norm": single[1], "mirrored_norm": mirrored_[1]}
    for key, value in single[2].items():
        result[f"single/{key}"] = value
        result[f"mirrored/{key}"] = mirrored_[2][key]
    np.savez(out, **result)


def worker(out: str, data_dir: str, model_dir: str) -> None:
    logging.basicConfig(level=logging.INFO)
    from spreid_tf.data import pipelines
    from spreid_tf.training import loop, optimizers, step
    from spreid_tf.training import strategy as strategy_lib

    strategy = strategy_lib.create_strategy("multi_worker")
    with strategy.scope():
        model = tiny_model()
        strategy_lib.set_synchronized_batch_norm(model, True)
        groups = optimizers.make_variable_groups(model, base_lr=0.05, total_steps=4)
    trainer = step.Trainer(strategy, model, groups, step.reid_loss)
    files = sorted(glob.glob(os.path.join(data_dir, "train-*.tfrecord")))

    def dataset_fn(ctx: tf.distribute.InputContext, start_step: int) -> tf.data.Dataset:
        return pipelines.train_dataset(files, batch_size=GLOBAL_BATCH, image_size=(SIZE, SIZE), seed=start_step,
                                       shuffle_buffer=16, input_context=ctx)

    result = loop.train_loop(trainer, dataset_fn, total_steps=4, model_dir=model_dir,
                             global_batch_size=GLOBAL_BATCH, checkpoint_every=2, log_every=2)
    weights = {f"w/{v.path}": v.numpy() for v in model.weights}
    np.savez(out, loss=result.metrics["loss"], final_step=result.final_step,
             chief=strategy_lib.is_chief(strategy), **weights)


KILLABLE_TOTAL_STEPS = 400
KILLABLE_CHECKPOINT_EVERY = 25


def killable_trainer():
    """The trainer of the killable run; the test builds the same one to restore into."""
    from spreid_tf.training import optimizers, step

    model = tiny_model(seed=0)
    groups = optimizers.make_variable_groups(model, base_lr=0.1, total_steps=KILLABLE_TOTAL_STEPS, num_decays=4,
                                             decay_rate=0.5, momentum=0.9, weight_decay=5e-4,
                                             head_layers=optimizers.REID_CLASSIFIER_LAYERS, head_lr_multiplier=10.0)
    return step.Trainer(tf.distribute.get_strategy(), model, groups, step.reid_loss, clip_norm=2.0)


def killable_dataset_fn(ctx: tf.distribute.InputContext, start_step: int = 0) -> tf.data.Dataset:
    images, labels = random_batches()

    def slow(x, y):
        # ~10 ms a batch, so the test can kill the run between checkpoints.
        tf.py_function(lambda: __import__("time").sleep(0.01), [], [])
        return x, y

    ds = tf.data.Dataset.from_tensor_slices((images, labels)).repeat()
    return ds.batch(ctx.get_per_replica_batch_size(GLOBAL_BATCH), drop_remainder=True).map(slow)


def killable(model_dir: str) -> None:
    from spreid_tf.training import loop

    loop.train_loop(killable_trainer(), killable_dataset_fn, total_steps=KILLABLE_TOTAL_STEPS, model_dir=model_dir,
                    global_batch_size=GLOBAL_BATCH, checkpoint_every=KILLABLE_CHECKPOINT_EVERY, log_every=50)


if __name__ == "__main__":
    if sys.argv[1] == "killable":
        killable(sys.argv[2])
    elif sys.argv[1] == "mirrored":
        mirrored(sys.argv[2])
    elif sys.argv[1] == "worker":
        worker(*sys.argv[2:5])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]!r}")
