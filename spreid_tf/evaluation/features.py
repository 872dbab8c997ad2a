"""Embeddings of converted splits: the one feature extraction of the package.

The embedding is the model's "embedding" output divided by its l2 norm, as the
SavedModel serves it (`spreid_tf.export_lib`); every evaluation compares these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from spreid_tf import atomic, run_folder
from spreid_tf.data import pipelines
from spreid_tf.data.manifest import load_manifest, split_shards

logger = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: l2-normalised embeddings


@dataclasses.dataclass
class FeatureSet:
    """l2-normalised embeddings of one split, in file order, with the ids the protocols need."""

    embedding: np.ndarray  # (N, D) float32, rows of unit length (or zero)
    person_id: np.ndarray  # (N,) int64
    camera_id: np.ndarray  # (N,) int64
    filename: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return len(self.person_id)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows divided by their l2 norm (norms computed in float64; a zero row stays zero), as float32."""
    x = np.asarray(x, np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x.astype(np.float64), x.astype(np.float64)))
    return (x / np.maximum(norms, 1e-12)[:, None]).astype(np.float32)


def extract_features(model: keras.Model, files: Sequence[str | os.PathLike], image_size: tuple[int, int],
                     batch_size: int = 64, log_every_s: float = 10.0, total: int | None = None) -> FeatureSet:
    """l2-normalised embeddings of every record of `files` (in file order), with a progress
    line (rate, ETA) every `log_every_s` seconds and at the end.

    `total` (the record count, for the ETA) is counted with an extra pass over the files
    when not given; converted splits know it from their manifest.
    """
    embed = tf.function(lambda x: model(x, training=False)[run_folder.EMBEDDING],
                        input_signature=[tf.TensorSpec([None, *image_size, 3], tf.uint8)])
    if total is None:
        total = sum(1 for _ in tf.data.TFRecordDataset([str(f) for f in files]))
    parts: dict[str, list] = {"embedding": [], "person_id": [], "camera_id": [], "filename": []}
    start, done = time.time(), 0
    last_log = start
    dataset = pipelines.eval_dataset([str(f) for f in files], batch_size=batch_size, image_size=tuple(image_size))
    for batch in dataset:
        parts["embedding"].append(np.asarray(embed(batch["image"]), np.float32))
        parts["person_id"].append(batch["person_id"].numpy().astype(np.int64))
        parts["camera_id"].append(batch["camera_id"].numpy().astype(np.int64))
        parts["filename"].append(np.char.decode(batch["filename"].numpy().astype(bytes), "utf-8"))
        done += len(parts["person_id"][-1])
        if time.time() - last_log >= log_every_s or done == total:
            last_log = time.time()
            rate = done / max(last_log - start, 1e-9)
            logger.info("features: %d/%d images (%.1f img/s, ETA %.0fs)", done, total, rate,
                        (total - done) / max(rate, 1e-9))
    if not parts["embedding"]:
        raise ValueError(f"no records in {[str(f) for f in files]}")
    features = {k: np.concatenate(v) for k, v in parts.items()}
    features["embedding"] = l2_normalize(features["embedding"])
    return FeatureSet(**features)


def split_features(model: keras.Model, converted_dir: str | os.PathLike, split: str,
                   image_size: tuple[int, int] | None = None, batch_size: int = 64,
                   cache_dir: str | os.PathLike | None = None, model_path: str | os.PathLike | None = None
                   ) -> FeatureSet:
    """`extract_features` of a converted split (the count for the ETA from its manifest).

    With `cache_dir` (and the `model_path` the model was loaded from), reuses
    `<cache_dir>/features_<dataset>_<hash of the conversion's path>_<split>.npz` when it was
    made from the same model file, conversion and image size, and writes it otherwise.
    """
    converted_dir = Path(converted_dir)
    image_size = tuple(image_size or run_folder.model_image_size(model))
    files = split_shards(converted_dir, split)
    manifest = load_manifest(converted_dir)
    total = manifest.splits[split].num_images
    if cache_dir is None:
        return extract_features(model, files, image_size, batch_size, total=total)
    if model_path is None:
        raise ValueError("split_features: a cache needs the model_path the model was loaded from")
    model_path = Path(model_path)
    stat = model_path.stat() if model_path.is_file() else None
    key = {"version": CACHE_VERSION, "model": str(model_path.resolve()),
           "model_mtime": stat.st_mtime if stat else None, "model_size": stat.st_size if stat else None,
           "data": str(converted_dir.resolve()), "data_created": manifest.created,
           "split": split, "image_size": list(image_size)}
    # The name carries the conversion's path: one model evaluated on two conversions of a
    # dataset keeps two caches instead of overwriting one.
    data_id = hashlib.sha1(key["data"].encode()).hexdigest()[:8]
    path = Path(cache_dir) / f"features_{converted_dir.name}_{data_id}_{split}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            if json.loads(str(cached["key"])) == key:
                logger.info("features: reusing %s", path)
                return FeatureSet(**{f.name: cached[f.name] for f in dataclasses.fields(FeatureSet)})
    features = extract_features(model, files, image_size, batch_size, total=total)
    with atomic.atomic_file(path) as f:
        np.savez(f, key=json.dumps(key), **dataclasses.asdict(features))
    return features


def read_ids(converted_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(person_id, camera_id) int64 arrays of a converted split, in file order, without decoding images."""
    pids, cams = [], []
    for batch in pipelines.eval_dataset([str(p) for p in split_shards(converted_dir, split)], batch_size=256,
                                        image_size=None, images=False):
        pids.append(batch["person_id"].numpy().astype(np.int64))
        cams.append(batch["camera_id"].numpy().astype(np.int64))
    return np.concatenate(pids), np.concatenate(cams)


def read_images(converted_dir: str | os.PathLike, split: str, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """The images (RGB uint8, their own size) of the records at `indices` (file order) of a split."""
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return {}
    dataset = pipelines.eval_dataset([str(p) for p in split_shards(converted_dir, split)], batch_size=1,
                                     image_size=None, indices=wanted)
    images = {i: batch["image"][0].numpy() for i, batch in zip(wanted, dataset)}
    if len(images) != len(wanted):
        raise ValueError(f"{converted_dir} {split}: asked for records {wanted}, the split has fewer")
    return images
