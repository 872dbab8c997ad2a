"""Shared helpers of the training tests (also imported by distributed_script.py)."""

from __future__ import annotations

import os

import numpy as np

SIZE = 16
NUM_CLASSES = 5


def tiny_model(seed: int = 0, num_classes: int = NUM_CLASSES, size: int = SIZE):
    """A small re-id-shaped model: conv, batch norm, pooling, a "classifier" layer, the real output dict."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="preprocessing")(inputs)
    x = keras.layers.Conv2D(8, 3, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    embedding = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    embedding = keras.layers.Activation("linear", dtype="float32", name="embedding")(embedding)
    logits = keras.layers.Dense(num_classes, name="classifier")(embedding)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(inputs, {"embedding": embedding, "logits": logits}, name="tiny")


def random_batches(num: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (num, SIZE, SIZE, 3) and int32 labels in [0, NUM_CLASSES)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num, SIZE, SIZE, 3)).astype("uint8")
    labels = rng.integers(0, NUM_CLASSES, num).astype("int32")
    return images, labels


def write_reid_shards(directory: str, num_shards: int = 2, per_shard: int = 16, seed: int = 0) -> list[str]:
    """Writes re-id TFRecord shards of random PNG crops (schema.make_reid_example)."""
    import cv2
    import tensorflow as tf

    from spreid_tf.data import schema

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for shard in range(num_shards):
        path = os.path.join(directory, schema.shard_name("train", shard, num_shards))
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(per_shard):
                label = int(rng.integers(0, NUM_CLASSES))
                image = rng.integers(0, 256, (20, 12, 3)).astype(np.uint8)
                encoded = cv2.imencode(".png", image)[1].tobytes()
                example = schema.make_reid_example(
                    encoded=encoded, image_format="png", height=20, width=12, filename=f"{shard}_{i}.png",
                    label=label, person_id=label + 1, dataset="toy", camera_id=0)
                writer.write(example.SerializeToString())
        paths.append(path)
    return paths
