"""The sharded output of Beam feature extraction: names, the input plan, and a reader.

    --output=out/features.npz  ->  out/features-00000-of-00003.npz  (one per work unit)
                                   out/features-00001-of-00003.npz
                                   out/features-00002-of-00003.npz
                                   out/features.json                (the report, written last)

Each shard is an .npz of `spreid_tf.inference.save_features` (embeddings, filenames,
skipped_filenames, skipped_reasons, and person_ids, camera_ids, datasets for TFRecord
input) over a contiguous run of the inputs, in input order; shard after shard is the
input order of `batch_infer.py`. The report has batch_infer's keys (config, features:
images, embedding_dim, seconds, images_per_second, skipped, skipped_count) plus `shards`
(the file names, in order) and `worker_seconds` (the extraction time summed over shards).
Its presence means every shard was written: it is written after all of them.

A shard is a work unit: `images_per_shard` image files, or one TFRecord file (a
converted split's shards hold ~4096 images each). This module imports no Beam:
downstream tools read the output with `load_sharded_features` (or each shard with
`inference.load_features`).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence

import numpy as np

DEFAULT_IMAGES_PER_SHARD = 4096


def output_stem(output: str) -> str:
    """`out/features.npz` -> `out/features` (shards and report are named after it)."""
    stem, extension = os.path.splitext(output)
    return stem if extension.lower() == ".npz" else output


def shard_path(stem: str, index: int, num_shards: int) -> str:
    """`<stem>-00003-of-00010.npz` (tensorflow/models' shard naming)."""
    return f"{stem}-{index:05d}-of-{num_shards:05d}.npz"


def report_path(stem: str) -> str:
    """`<stem>.json`, where batch_infer.py writes its report too."""
    return f"{stem}.json"


def plan_shards(kind: str, paths: Sequence[str], images_per_shard: int = DEFAULT_IMAGES_PER_SHARD
                ) -> list[tuple[int, tuple[str, ...]]]:
    """The work units, in input order: (shard index, the input paths it reads).

    `kind` and `paths` are an `inference.InputSource`'s. Image files are cut into runs of
    `images_per_shard`; TFRecords give one unit per file.
    """
    if images_per_shard < 1:
        raise ValueError(f"images_per_shard must be positive, got {images_per_shard}")
    if kind == "tfrecord":
        return [(i, (path,)) for i, path in enumerate(paths)]
    return [(i, tuple(paths[start:start + images_per_shard]))
            for i, start in enumerate(range(0, len(paths), images_per_shard))]


def load_sharded_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a finished sharded output into one dict of arrays, as `inference.load_features` reads
    batch_infer.py's single .npz of the same inputs. Local paths or gs:// (`tf.io.gfile`).

    Args:
        path: the report (`<stem>.json`) or the --output given (`<stem>.npz`).

    Raises:
        FileNotFoundError: no report (the run did not finish) or a shard it lists is missing.
    """
    import tensorflow as tf  # only once there is something to read: the binary imports this module early

    path = os.fspath(path)
    report = path if path.endswith(".json") else report_path(output_stem(path))
    if not tf.io.gfile.exists(report):
        raise FileNotFoundError(f"no report {report!r}: the extraction did not finish (the report is written "
                                "after every shard)")
    with tf.io.gfile.GFile(report) as f:
        names = json.load(f)["shards"]
    parts = []
    for name in names:
        shard = f"{report.rpartition('/')[0] or '.'}/{name}"
        if not tf.io.gfile.exists(shard):
            raise FileNotFoundError(f"shard {shard!r} listed in {report!r} is missing")
        with tf.io.gfile.GFile(shard, "rb") as f, np.load(io.BytesIO(f.read()), allow_pickle=False) as data:
            parts.append({key: data[key] for key in data.files})
    return concatenate(parts)


def concatenate(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Joins shards' arrays key by key, in order (an empty shard's (0, D) embeddings included)."""
    if not parts:
        raise ValueError("no shards to join")
    for part in parts:
        if set(part) != set(parts[0]):
            raise ValueError(f"shards hold different arrays: {sorted(part)} vs {sorted(parts[0])}")
    # Every array of save_features has one row per image or per skipped input: rows join.
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
