"""Plain reference implementations that the fast metrics and re-ranking are checked against.

Written for clarity, not speed, and independently of spreid_tf:

* `ref_eval_market1501`: torchreid's `eval_market1501` with fast-reid's mINP.
* `ref_eval_cuhk03_classic`: per-query loops with the draw scheme that
  `spreid_tf.metrics.evaluate_cuhk03_classic` documents.
* `ref_re_ranking`: the k-reciprocal re-ranking of Zhong et al. (CVPR 2017) as
  published (zhunzhong07/person-re-ranking, also torchreid's `re_ranking`).

benchmarks/evaluation.py imports this file too (the tests folder is put on
sys.path), so that the benchmark times the same references the tests trust.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def ref_pairwise_distance(query: np.ndarray, gallery: np.ndarray, metric: str) -> np.ndarray:
    """float64 distances, straight from the definitions."""
    q = np.asarray(query, dtype=np.float64)
    g = np.asarray(gallery, dtype=np.float64)
    if metric in ("euclidean", "sqeuclidean"):
        sq = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
        return np.sqrt(sq) if metric == "euclidean" else sq
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        gn = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        return 1.0 - qn @ gn.T
    raise ValueError(metric)


def ref_eval_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50,
                        sort_kind="quicksort"):
    """torchreid's eval_market1501 plus fast-reid's mINP.

    Two additions, both where torchreid has no answer: gallery junk (pid -1) is
    dropped first (torchreid's dataset class drops it before evaluation), and a
    query with fewer valid gallery entries than max_rank gets its CMC padded
    with its last value (torchreid would build a ragged array).

    Returns:
        (cmc float32, mAP, mINP, num_valid_queries).
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    keep_g = g_pids != -1
    distmat, g_pids, g_camids = distmat[:, keep_g], g_pids[keep_g], g_camids[keep_g]
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        max_rank = num_g
    indices = np.argsort(distmat, axis=1, kind=sort_kind)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_AP, all_INP = [], [], []
    num_valid_q = 0.0
    for q_idx in range(num_q):
        q_pid = q_pids[q_idx]
        q_camid = q_camids[q_idx]
        order = indices[q_idx]
        remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
        keep = np.invert(remove)
        raw_cmc = matches[q_idx][keep]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        pos_idx = np.where(raw_cmc == 1)
        max_pos_idx = np.max(pos_idx)
        inp = cmc[max_pos_idx] / (max_pos_idx + 1.0)
        all_INP.append(inp)
        cmc[cmc > 1] = 1
        cmc = cmc[:max_rank]
        if len(cmc) < max_rank:
            cmc = np.pad(cmc, (0, max_rank - len(cmc)), mode="edge")
        all_cmc.append(cmc)
        num_valid_q += 1.0
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        tmp_cmc = np.asarray(tmp_cmc) * raw_cmc
        AP = tmp_cmc.sum() / num_rel
        all_AP.append(AP)
    assert num_valid_q > 0, "Error: all query identities do not appear in gallery"
    all_cmc = np.asarray(all_cmc).astype(np.float32)
    all_cmc = all_cmc.sum(0) / num_valid_q
    return all_cmc, np.mean(all_AP), np.mean(all_INP), int(num_valid_q)


def ref_eval_cuhk03_classic(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50,
                            num_repeats=10, rng=None):
    """Single-shot CMC, one loop per repeat and query, with the documented draws.

    Per repeat: u = rng.random((num_query, num_ids)), gallery identities in sorted
    pid order; query i takes member floor(u[i, k] * n) of identity k's n kept
    entries (gallery order); ties in distance go to the lower gallery index.

    Returns:
        cmc (float64, max_rank), num_valid_queries.
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    keep_g = g_pids != -1
    distmat, g_pids, g_camids = distmat[:, keep_g], g_pids[keep_g], g_camids[keep_g]
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    ids = sorted(set(g_pids.tolist()))
    total = np.zeros(max_rank)
    num_valid = 0
    valid = []
    for i in range(num_q):
        valid.append(any(g_pids[j] == q_pids[i] and g_camids[j] != q_camids[i]
                         for j in range(num_g)))
    for _ in range(num_repeats):
        u = rng.random((num_q, len(ids)))
        for i in range(num_q):
            if not valid[i]:
                continue
            members = defaultdict(list)
            for j in range(num_g):
                if g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i]:
                    continue
                members[g_pids[j]].append(j)
            chosen = []
            for k, pid in enumerate(ids):
                if members[pid]:
                    n = len(members[pid])
                    chosen.append(members[pid][min(int(u[i, k] * n), n - 1)])
            chosen.sort(key=lambda j: (distmat[i, j], j))
            rank = [g_pids[j] for j in chosen].index(q_pids[i])
            for r in range(max_rank):
                total[r] += 1.0 if rank <= r else 0.0
    num_valid = sum(valid)
    return total / (num_valid * num_repeats), num_valid


def ref_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    """k-reciprocal re-ranking, a line-by-line port of the published code."""
    original_dist = np.concatenate(
        [np.concatenate([q_q_dist, q_g_dist], axis=1),
         np.concatenate([q_g_dist.T, g_g_dist], axis=1)],
        axis=0,
    )
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist).astype(np.int32)

    query_num = q_g_dist.shape[0]
    gallery_num = q_g_dist.shape[0] + q_g_dist.shape[1]
    all_num = gallery_num

    for i in range(all_num):
        # k-reciprocal neighbors
        forward_k_neigh_index = initial_rank[i, :k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, :k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward_k_neigh_index = initial_rank[
                candidate, :int(np.around(k1 / 2.0)) + 1]
            candidate_backward_k_neigh_index = initial_rank[
                candidate_forward_k_neigh_index, :int(np.around(k1 / 2.0)) + 1]
            fi_candidate = np.where(candidate_backward_k_neigh_index == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward_k_neigh_index[fi_candidate]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > \
                    2.0 / 3 * len(candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(
                    k_reciprocal_expansion_index, candidate_k_reciprocal_index)

        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num, ]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
        del V_qe
    del initial_rank
    invIndex = []
    for i in range(gallery_num):
        invIndex.append(np.where(V[:, i] != 0)[0])

    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)

    for i in range(query_num):
        temp_min = np.zeros(shape=[1, gallery_num], dtype=np.float32)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(
                V[i, indNonZero[j]], V[indImages[j], indNonZero[j]])
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)

    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    del original_dist
    del V
    del jaccard_dist
    final_dist = final_dist[:query_num, query_num:]
    return final_dist
