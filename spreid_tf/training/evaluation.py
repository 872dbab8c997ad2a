"""End-of-training evaluation: re-id CMC/mAP on query/gallery, and the chance level.

Feature extraction and the LIP scores live in `spreid_tf.evaluate_lib`; `spreid_tf.metrics`
holds the protocols.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from spreid_tf import metrics
from spreid_tf.evaluate_lib import extract_features
from spreid_tf.data import schema
from spreid_tf.data.manifest import split_shards


def evaluate_reid(
    model: keras.Model,
    converted_dir: str | os.PathLike,
    image_size: tuple[int, int],
    batch_size: int = 64,
    metric: str = "cosine",
) -> dict:
    """Single-query CMC and mAP of `model` on a converted dataset's query/gallery splits.

    Market-1501 / DukeMTMC-reID protocol (`metrics.evaluate_features`): gallery images
    of the query's identity and camera are excluded.

    Returns:
        `RankingResult.as_dict()` (mAP, rank1/5/10, cmc, ...).
    """
    query, gallery = (extract_features(model, split_shards(converted_dir, split), image_size, batch_size)
                      for split in ("query", "gallery"))
    result = metrics.evaluate_features(query.embedding, gallery.embedding, query.person_id, gallery.person_id,
                                       query.camera_id, gallery.camera_id, metric=metric)
    return result.as_dict()


def chance_reid(converted_dir: str | os.PathLike, trials: int = 200, seed: int = 0) -> dict:
    """mAP and CMC of random rankings on a converted query/gallery (the chance level).

    Averages `trials` evaluations of random features; needs only the ids, not images.
    """
    def ids(split: str) -> tuple[np.ndarray, np.ndarray]:
        # Only the ids are needed: parse the records, decode no image.
        ds = tf.data.TFRecordDataset([str(p) for p in split_shards(converted_dir, split)]).batch(256)
        pids, cams = [], []
        for serialized in ds:
            features = schema.parse_reid_example(serialized)
            pids.append(features[schema.PERSON_ID].numpy())
            cams.append(features[schema.CAMERA_ID].numpy())
        return np.concatenate(pids), np.concatenate(cams)

    q_pids, q_cams = ids("query")
    g_pids, g_cams = ids("gallery")
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(trials):
        q = rng.standard_normal((len(q_pids), 8)).astype(np.float32)
        g = rng.standard_normal((len(g_pids), 8)).astype(np.float32)
        results.append(metrics.evaluate_features(q, g, q_pids, g_pids, q_cams, g_cams).as_dict())
    out = {key: float(np.mean([r[key] for r in results])) for key in ("mAP", "rank1", "rank5", "rank10")
           if key in results[0]}
    out["num_valid_queries"] = results[0]["num_valid_queries"]
    return out
