"""The evaluation convention: which protocol scores a conversion, which distance ranks.

Every evaluation in the package (training's end evaluation, `python -m spreid_tf.evaluate`,
the demo, batch inference's search) compares l2-normalised embeddings (`features`) with
`DEFAULT_METRIC`, euclidean distance, and scores them with the protocol the conversion's
dataset names: `MARKET1501` (gallery entries of the query's identity and camera excluded,
junk ignored, distractors wrong; also DukeMTMC, CUHK03 767/700, MSMT17 and the small
benchmarks' query/gallery) or `CUHK03_CLASSIC` (single shot on one classic split).
On unit vectors euclidean, squared euclidean and cosine distances rank alike.
"""

from __future__ import annotations

import os

import numpy as np

from spreid_tf import metrics
from spreid_tf.data.dataset_info import CUHK03_CLASSIC_PROTOCOL as CUHK03_CLASSIC
from spreid_tf.data.dataset_info import MARKET1501_PROTOCOL as MARKET1501
from spreid_tf.data.dataset_info import PROTOCOLS
from spreid_tf.data.manifest import Manifest, load_manifest

DEFAULT_METRIC = "euclidean"

_PROTOCOL_NAMES = {MARKET1501: "Market-1501 protocol", CUHK03_CLASSIC: "CUHK03 classic single-shot protocol"}


def protocol_of(manifest: Manifest) -> str:
    """The protocol that scores a conversion: the one its dataset's registry entry named for it
    when it was converted (`DatasetInfo.protocol`, kept in the manifest)."""
    if manifest.protocol not in PROTOCOLS:
        raise ValueError(f"{manifest.dataset}: unknown evaluation protocol {manifest.protocol!r}; known: {PROTOCOLS}")
    return manifest.protocol


def describe(protocol: str, metric: str = DEFAULT_METRIC) -> str:
    """What results files, tables and logs say about how they were scored."""
    return f"{_PROTOCOL_NAMES[protocol]}, {metric} distance on l2-normalised embeddings"


def score_distances(distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids, protocol: str,
                    max_rank: int = 50) -> metrics.RankingResult:
    """Scores a (num_query, num_gallery) distance matrix with `protocol`."""
    if protocol == CUHK03_CLASSIC:
        return metrics.evaluate_cuhk03_classic(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)
    if protocol == MARKET1501:
        return metrics.evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)
    raise ValueError(f"unknown protocol {protocol!r}; known: {PROTOCOLS}")


def score(query, gallery, protocol: str, metric: str = DEFAULT_METRIC, max_rank: int = 50) -> metrics.RankingResult:
    """Scores two `features.FeatureSet`s (l2-normalised embeddings) with `protocol` and `metric`.

    The Market-1501 rule streams the distances in blocks (`metrics.evaluate_features`);
    CUHK03's classic protocol draws from the whole matrix.
    """
    if protocol == MARKET1501:
        return metrics.evaluate_features(query.embedding, gallery.embedding, query.person_id, gallery.person_id,
                                         query.camera_id, gallery.camera_id, metric=metric, max_rank=max_rank)
    distmat = metrics.pairwise_distance(query.embedding, gallery.embedding, metric)
    return score_distances(distmat, query.person_id, gallery.person_id, query.camera_id, gallery.camera_id,
                           protocol, max_rank)


def chance(converted_dir: str | os.PathLike, trials: int = 200, seed: int = 0) -> dict:
    """mAP and CMC of random rankings on a converted query/gallery (the chance level), scored
    with the conversion's protocol; needs only the ids, not the images."""
    from spreid_tf.evaluation.features import FeatureSet, read_ids

    protocol = protocol_of(load_manifest(converted_dir))
    ids = {split: read_ids(converted_dir, split) for split in ("query", "gallery")}
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(trials):
        sets = [FeatureSet(rng.standard_normal((len(pids), 8)).astype(np.float32), pids, cams,
                           np.array([""] * len(pids))) for pids, cams in ids.values()]
        results.append(score(*sets, protocol).as_dict())
    out = {key: float(np.mean([r[key] for r in results])) for key in ("mAP", "rank1", "rank5", "rank10")
           if key in results[0]}
    out["num_valid_queries"] = results[0]["num_valid_queries"]
    out["protocol"] = protocol
    return out


def first_hit_ranks(distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids, chunk: int = 512) -> np.ndarray:
    """0-based rank of each query's first correct match under the Market rule (-1: none).

    Used to pick the worst queries for the ranked-list pictures.
    """
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    out = np.full(len(q_pids), -1, np.int64)
    for start in range(0, len(q_pids), chunk):
        d = distmat[start:start + chunk]
        same_pid = q_pids[start:start + chunk, None] == g_pids[None]
        excluded = (same_pid & (q_camids[start:start + chunk, None] == g_camids[None])) | (g_pids[None] == -1)
        positive = same_pid & ~excluded
        nearest = np.where(positive, d, np.inf).min(axis=1)
        ranks = ((d < nearest[:, None]) & ~excluded & ~positive).sum(axis=1)
        out[start:start + chunk] = np.where(np.isfinite(nearest), ranks, -1)
    return out


def nearest(query: np.ndarray, gallery: np.ndarray, top_k: int, metric: str = DEFAULT_METRIC,
            chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The `top_k` gallery rows nearest each query row: (indices, distances), each (Q, k), nearest
    first (ties by gallery order). Queries go in chunks, so memory grows with the gallery, not Q x G."""
    k = min(int(top_k), len(gallery))
    if k < 1:
        raise ValueError(f"top_k must be >= 1 and the gallery non-empty, got top_k={top_k}, {len(gallery)} rows")
    indices = np.empty((len(query), k), np.int64)
    distances = np.empty((len(query), k), np.float32)
    for start in range(0, len(query), chunk):
        d = metrics.pairwise_distance(query[start:start + chunk], gallery, metric)
        top = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(np.arange(k), (len(d), 1))
        for row in range(len(d)):
            candidates = np.sort(top[row])  # gallery order first, so the stable sort breaks ties by it
            order = candidates[np.argsort(d[row, candidates], kind="stable")]
            indices[start + row], distances[start + row] = order, d[row, order]
    return indices, distances
