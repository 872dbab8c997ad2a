"""The TFRecord schema shared by the converters and the tf.data pipelines.

One source of truth for every key. Keys follow tensorflow/models official/vision
(`image/encoded`, `image/format`, ..., `image/segmentation/class/encoded`). Images
are stored as their original encoded bytes (never re-encoded); images that only exist
as arrays (CUHK03's .mat file) are encoded once as PNG.

Re-id example
    image/encoded        bytes   JPEG/PNG bytes
    image/format         bytes   b"jpeg" | b"png"
    image/height         int64
    image/width          int64
    image/filename       bytes   path relative to the source root
    image/class/label    int64   contiguous training label in [0, num_classes); -1 in
                                 evaluation splits (query/gallery) where it is unused
    person/id            int64   the benchmark's own person id (0 = distractor where
                                 the benchmark has them)
    person/dataset       bytes   dataset name, e.g. b"market1501"
    camera/id            int64   0-based camera index

Parsing example (LIP)
    image/encoded, image/format, image/height, image/width, image/filename
    image/segmentation/class/encoded  bytes  PNG, one uint8 label per pixel (0-19)
    image/segmentation/class/format   bytes  b"png"

Shards are named `<split>-00000-of-00008.tfrecord`; each converted dataset folder
holds a `manifest.json` (see MANIFEST_FILENAME and SCHEMA_VERSION).
"""

from __future__ import annotations

import tensorflow as tf

SCHEMA_VERSION = 2  # 2: the manifest names its evaluation protocol
MANIFEST_FILENAME = "manifest.json"
SHARD_SUFFIX = ".tfrecord"

IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_FILENAME = "image/filename"
CLASS_LABEL = "image/class/label"
PERSON_ID = "person/id"
PERSON_DATASET = "person/dataset"
CAMERA_ID = "camera/id"
MASK_ENCODED = "image/segmentation/class/encoded"
MASK_FORMAT = "image/segmentation/class/format"

REID_FEATURES = {
    IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
    IMAGE_FORMAT: tf.io.FixedLenFeature([], tf.string),
    IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
    IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string),
    CLASS_LABEL: tf.io.FixedLenFeature([], tf.int64),
    PERSON_ID: tf.io.FixedLenFeature([], tf.int64),
    PERSON_DATASET: tf.io.FixedLenFeature([], tf.string),
    CAMERA_ID: tf.io.FixedLenFeature([], tf.int64),
}

PARSING_FEATURES = {
    IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
    IMAGE_FORMAT: tf.io.FixedLenFeature([], tf.string),
    IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
    IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string),
    MASK_ENCODED: tf.io.FixedLenFeature([], tf.string),
    MASK_FORMAT: tf.io.FixedLenFeature([], tf.string),
}


def shard_name(split: str, index: int, num_shards: int) -> str:
    """`train-00003-of-00008.tfrecord`."""
    return f"{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def shard_pattern(split: str) -> str:
    """Glob matching every shard of a split."""
    return f"{split}-?????-of-?????{SHARD_SUFFIX}"


def _bytes(value: bytes | str) -> tf.train.Feature:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def make_reid_example(
    *,
    encoded: bytes,
    image_format: str,
    height: int,
    width: int,
    filename: str,
    label: int,
    person_id: int,
    dataset: str,
    camera_id: int,
) -> tf.train.Example:
    """Builds one re-id tf.train.Example (see the module docstring for the fields)."""
    if image_format not in ("jpeg", "png"):
        raise ValueError(f"{filename}: image_format must be 'jpeg' or 'png', got {image_format!r}")
    feature = {
        IMAGE_ENCODED: _bytes(encoded),
        IMAGE_FORMAT: _bytes(image_format),
        IMAGE_HEIGHT: _int64(height),
        IMAGE_WIDTH: _int64(width),
        IMAGE_FILENAME: _bytes(filename),
        CLASS_LABEL: _int64(label),
        PERSON_ID: _int64(person_id),
        PERSON_DATASET: _bytes(dataset),
        CAMERA_ID: _int64(camera_id),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def make_parsing_example(
    *,
    encoded: bytes,
    image_format: str,
    height: int,
    width: int,
    filename: str,
    mask_png: bytes,
) -> tf.train.Example:
    """Builds one parsing tf.train.Example: image bytes and a PNG label mask."""
    if image_format not in ("jpeg", "png"):
        raise ValueError(f"{filename}: image_format must be 'jpeg' or 'png', got {image_format!r}")
    feature = {
        IMAGE_ENCODED: _bytes(encoded),
        IMAGE_FORMAT: _bytes(image_format),
        IMAGE_HEIGHT: _int64(height),
        IMAGE_WIDTH: _int64(width),
        IMAGE_FILENAME: _bytes(filename),
        MASK_ENCODED: _bytes(mask_png),
        MASK_FORMAT: _bytes("png"),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parse_reid_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses serialized re-id Examples (scalar or batch) into a dict keyed as above."""
    return tf.io.parse_single_example(serialized, REID_FEATURES) if serialized.shape.rank == 0 \
        else tf.io.parse_example(serialized, REID_FEATURES)


def parse_parsing_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses serialized LIP parsing Examples (scalar or batch)."""
    return tf.io.parse_single_example(serialized, PARSING_FEATURES) if serialized.shape.rank == 0 \
        else tf.io.parse_example(serialized, PARSING_FEATURES)
