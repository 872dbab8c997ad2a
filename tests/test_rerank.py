"""Tests for spreid_tf.rerank against the published algorithm (tests/_reference.py)."""

import pathlib
import tracemalloc
import sys

import numpy as np
import pytest

from spreid_tf import metrics, rerank

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # tests/_reference.py
import _reference as ref  # noqa: E402


def _integer_features(seed, num_query, num_gallery, dim=16, num_ids=15, scale=400):
    """Clustered integer features: every float32 distance is exact.

    Squared distances stay below 2^24 (4 * dim * scale^2 = 1.02e7), so matmul
    sums are exact in any order and the fast code and the reference see the
    very same distances; only tie order could then differ between them.
    """
    rng = np.random.default_rng(seed)
    centres = rng.integers(-scale // 2, scale // 2, (num_ids, dim))
    q_pids = rng.integers(0, num_ids, num_query)
    g_pids = rng.integers(0, num_ids, num_gallery)
    noise = scale // 2

    def draw(pids):
        x = centres[pids] + rng.integers(-noise, noise, (len(pids), dim))
        return np.clip(x, -scale, scale).astype(np.float32)

    return draw(q_pids), draw(g_pids), q_pids, g_pids


def _exact_euclidean(a, b):
    a, b = a.astype(np.int64), b.astype(np.int64)
    sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    # float64 sqrt of an integer < 2^24, squared and rounded to float32 by the
    # reference, gives the integer back.
    return np.sqrt(sq.astype(np.float64))


def _reference_inputs(qf, gf):
    return _exact_euclidean(qf, gf), _exact_euclidean(qf, qf), _exact_euclidean(gf, gf)


def _boundary_ties(q_g, q_q, g_g, k1, k2):
    """Rows where the reference's neighbour sets depend on how np.argsort orders ties."""
    d = np.block([[q_q, q_g], [q_g.T, g_g]])
    d = np.power(d, 2).astype(np.float32)
    d = np.transpose(d / np.max(d, axis=0))
    s = np.sort(d, axis=1)
    n = s.shape[1]
    cuts = {c for c in (k1 + 1, int(np.around(k1 / 2.0)) + 1, k2) if c < n}
    return [(c, np.flatnonzero(s[:, c - 1] == s[:, c])) for c in cuts
            if (s[:, c - 1] == s[:, c]).any()]


def _ranking(dist, q_pids, g_pids):
    q_cams = np.zeros(len(q_pids), int)
    g_cams = np.ones(len(g_pids), int)
    return metrics.evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=20)


@pytest.mark.parametrize("seed,num_query,num_gallery,k1,k2,lam", [
    (0, 40, 160, 20, 6, 0.3),     # the paper's parameters
    (1, 60, 240, 20, 6, 0.3),
    (2, 30, 90, 5, 2, 0.5),       # small k
    (3, 25, 100, 3, 1, 0.0),      # k2 = 1: no query expansion; Jaccard only
    (4, 20, 80, 1, 1, 1.0),       # smallest k1; original distance only
    (5, 50, 130, 7, 3, 0.1),      # odd k1: round(3.5) = 4
    (6, 10, 290, 9, 30, 0.3),     # k2 > k1 + 1
])
def test_matches_published_algorithm(seed, num_query, num_gallery, k1, k2, lam):
    qf, gf, q_pids, g_pids = _integer_features(seed, num_query, num_gallery)
    inputs = _reference_inputs(qf, gf)
    assert not _boundary_ties(*inputs, k1, k2), "test data has ties at a neighbour boundary"
    expected = ref.ref_re_ranking(*inputs, k1=k1, k2=k2, lambda_value=lam)
    got = rerank.re_ranking(qf, gf, k1=k1, k2=k2, lambda_value=lam, block_size=64)
    assert got.dtype == np.float32 and got.shape == (num_query, num_gallery)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # Stronger than the contract: with exact distances the float32 operations
    # are the published ones in the published order (np.sum's pairwise order
    # for V, row by row for the expansion, column by column for the Jaccard
    # sums), so the result is bit-identical.
    np.testing.assert_array_equal(got, expected)
    # Re-ranking must reorder something for the test to mean anything.
    if lam < 1.0:
        assert (np.argsort(expected, axis=1) != np.argsort(inputs[0], axis=1)).any()
    a, b = _ranking(got, q_pids, g_pids), _ranking(expected, q_pids, g_pids)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert a.mAP == b.mAP and a.mINP == b.mINP


@pytest.mark.parametrize("k", [1, 5, 50])
def test_top_k_merge_matches_a_stable_sort(k):
    # Blocks merged as the symmetric pass does (rows of one block, columns of
    # another), against a stable argsort of each full row; with many ties.
    rng = np.random.default_rng(k)
    n = 230
    full = rng.integers(0, 40, (n, n)).astype(np.float32)
    full = np.minimum(full, full.T) - 2.0  # symmetric, some negative raw values
    top = rerank._TopK(n, k)
    bounds = [(0, 17), (17, 100), (100, 101), (101, 230)]
    for i, (a0, a1) in enumerate(bounds):
        for b0, b1 in bounds[i:]:
            block = np.ascontiguousarray(full[a0:a1, b0:b1])
            top.merge(a0, block, b0, axis=1)
            if a0 != b0:
                top.merge(b0, block, a0, axis=0)
    idx, dist = top.result()
    clipped = np.maximum(full, 0.0)
    order = np.argsort(clipped, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(dist, np.take_along_axis(clipped, order, axis=1))


def test_block_sizes_and_backends_agree():
    qf, gf, _, _ = _integer_features(7, 37, 151)
    inputs = _reference_inputs(qf, gf)
    assert not _boundary_ties(*inputs, 20, 6)
    expected = ref.ref_re_ranking(*inputs)
    for block_size in (1, 7, 50, 4096):
        got = rerank.re_ranking(qf, gf, block_size=block_size)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=str(block_size))
    got = rerank.re_ranking(qf, gf, backend="tf", block_size=40)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_fewer_points_than_neighbours():
    # q + g = 9 < k1 + 1: every row's neighbour list is the whole set.
    qf, gf, _, _ = _integer_features(8, 3, 6)
    expected = ref.ref_re_ranking(*_reference_inputs(qf, gf), k1=20, k2=6)
    np.testing.assert_allclose(rerank.re_ranking(qf, gf), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
def test_other_metrics_with_float_features(metric):
    # Random floats: the two sides compute distances with different rounding,
    # so equality is to float32 precision; there are no ties.
    rng = np.random.default_rng(12)
    centres = rng.standard_normal((12, 32))
    q_pids, g_pids = rng.integers(0, 12, 50), rng.integers(0, 12, 200)
    qf = centres[q_pids] + 0.8 * rng.standard_normal((50, 32))
    gf = centres[g_pids] + 0.8 * rng.standard_normal((200, 32))
    inputs = [ref.ref_pairwise_distance(a, b, metric) for a, b in ((qf, gf), (qf, qf), (gf, gf))]
    expected = ref.ref_re_ranking(*inputs)
    got = rerank.re_ranking(qf, gf, metric=metric, block_size=64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    a, b = _ranking(got, q_pids, g_pids), _ranking(expected, q_pids, g_pids)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert a.mAP == pytest.approx(b.mAP, abs=1e-12)


def test_errors():
    q, g = np.zeros((3, 4), np.float32), np.ones((5, 4), np.float32)
    with pytest.raises(ValueError, match="k1 must be a positive integer"):
        rerank.re_ranking(q, g, k1=0)
    with pytest.raises(ValueError, match="k2 must be a positive integer"):
        rerank.re_ranking(q, g, k2=2.5)
    with pytest.raises(ValueError, match="lambda_value must be in"):
        rerank.re_ranking(q, g, lambda_value=1.5)
    with pytest.raises(ValueError, match="backend must be one of"):
        rerank.re_ranking(q, g, backend="torch")
    with pytest.raises(ValueError, match="metric must be one of"):
        rerank.re_ranking(q, g, metric="l1")
    with pytest.raises(ValueError, match=r"query \(3, 4\), gallery \(5, 3\)"):
        rerank.re_ranking(q, np.ones((5, 3)))
    bad = g.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"gallery_features \(shape \(5, 4\)\) has NaN"):
        rerank.re_ranking(q, bad)
    with pytest.raises(ValueError, match="query_features is empty"):
        rerank.re_ranking(np.zeros((0, 4)), g)


def _traced_peak(function, *args, **kwargs):
    """(result, peak bytes that numpy allocated during the call), by tracemalloc."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = function(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_memory_grows_with_the_rows_not_their_square():
    # The published code holds several dense (q+g) x (q+g) matrices; here every array is of a
    # fixed size (distance blocks, the Jaccard budget) or proportional to the rows (top-k lists,
    # sparse V with ~k1 entries a row, the <= 1024-row candidate masks) or the output itself
    # (q x g). With q fixed, doubling g doubles the rows, so the memory beyond the output must
    # at most double (plus 10% for the data-dependent counts: nonzeros of V, candidate pairs),
    # where one dense (q+g)^2 float32 matrix would quadruple.
    rng = np.random.default_rng(21)
    num_query, dim = 100, 32
    centres = rng.standard_normal((300, dim)).astype(np.float32)

    def features(n):
        return centres[rng.integers(0, 300, n)] + 0.5 * rng.standard_normal((n, dim), dtype=np.float32)

    qf = features(num_query)
    working = []
    for num_gallery in (1500, 3000):
        gf = features(num_gallery)
        out, peak = _traced_peak(rerank.re_ranking, qf, gf, block_size=256)
        working.append(peak - out.nbytes)
    rows = num_query + 3000
    assert working[1] <= 2.2 * working[0], working
    assert working[1] < 4 * rows ** 2, (working, "bytes of one dense (q+g)^2 float32 matrix:", 4 * rows ** 2)


# ------------------------------------------------------------------- streamed re-ranking


def _with_cameras(seed, q_pids, g_pids, num_cams=3, junk_fraction=0.1):
    """Camera ids (several per pid, so some gallery items share the query's camera)
    and gallery pids with a fraction turned into junk (-1)."""
    rng = np.random.default_rng(seed)
    g_pids = g_pids.copy()
    g_pids[rng.random(len(g_pids)) < junk_fraction] = metrics.JUNK_PID
    return (g_pids, rng.integers(0, num_cams, len(q_pids)),
            rng.integers(0, num_cams, len(g_pids)))


@pytest.mark.parametrize("metric,block_size", [
    ("euclidean", 3), ("euclidean", 7), ("euclidean", 16), ("euclidean", 4096),
    ("sqeuclidean", 9), ("cosine", 11),
])
def test_blocks_equal_re_ranking(metric, block_size):
    # 37 queries: 3, 7, 9, 11 and 16 do not divide it. Each block's raw distances are
    # recomputed by the same matmul calls on the same block shapes as the neighbour
    # search that re_ranking keeps them from, and every row is combined on its own,
    # so the streamed rows are bit-identical (no tolerance to derive).
    qf, gf, _, _ = _integer_features(13, 37, 151)
    if metric != "euclidean":  # real-valued features, rounding in every distance
        rng = np.random.default_rng(14)
        qf = qf + rng.standard_normal(qf.shape).astype(np.float32)
        gf = gf + rng.standard_normal(gf.shape).astype(np.float32)
    expected = rerank.re_ranking(qf, gf, metric=metric, block_size=block_size)
    spans, parts = [], []
    for start, stop, block in rerank.re_ranking_blocks(qf, gf, metric=metric,
                                                       block_size=block_size):
        assert block.dtype == np.float32 and block.shape == (stop - start, 151)
        spans.append((start, stop))
        parts.append(block)
    assert spans == [(s, min(s + block_size, 37)) for s in range(0, 37, block_size)]
    np.testing.assert_array_equal(np.concatenate(parts), expected)


def test_blocks_equal_re_ranking_tf_backend():
    qf, gf, _, _ = _integer_features(15, 23, 70)
    expected = rerank.re_ranking(qf, gf, backend="tf", block_size=10)
    got = np.concatenate([b for _, _, b in rerank.re_ranking_blocks(qf, gf, backend="tf",
                                                                    block_size=10)])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("block_size,k1,k2,lam", [(7, 20, 6, 0.3), (16, 5, 2, 0.5),
                                                  (5, 3, 1, 0.0), (100, 20, 6, 0.3)])
def test_evaluate_reranked_equals_evaluate_rank(block_size, k1, k2, lam):
    qf, gf, q_pids, g_pids = _integer_features(16, 41, 170, num_ids=10)
    g_pids, q_cams, g_cams = _with_cameras(17, q_pids, g_pids)
    # The data must exercise both exclusions.
    same = (g_pids[None, :] == q_pids[:, None]) & (g_cams[None, :] == q_cams[:, None])
    assert same.any() and (g_pids == metrics.JUNK_PID).any()
    options = dict(k1=k1, k2=k2, lambda_value=lam)
    expected = metrics.evaluate_rank(rerank.re_ranking(qf, gf, **options), q_pids, g_pids,
                                     q_cams, g_cams, max_rank=30)
    got = rerank.evaluate_reranked(qf, gf, q_pids, g_pids, q_cams, g_cams, max_rank=30,
                                   block_size=block_size, **options)
    # Same float32 distances, same ranks, same per-query sums in query order: equal.
    np.testing.assert_array_equal(got.cmc, expected.cmc)
    assert got.mAP == expected.mAP and got.mINP == expected.mINP
    assert (got.num_valid_queries, got.num_skipped_queries) == \
        (expected.num_valid_queries, expected.num_skipped_queries)


def test_streamed_errors_are_raised_at_the_call():
    q, g = np.zeros((3, 4), np.float32), np.ones((5, 4), np.float32)
    with pytest.raises(ValueError, match="k1 must be a positive integer"):
        rerank.re_ranking_blocks(q, g, k1=0)
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        rerank.re_ranking_blocks(q, g, block_size=0)
    with pytest.raises(ValueError, match="g_pids has length 4"):
        rerank.evaluate_reranked(q, g, [0, 1, 2], [0, 1, 2, 3], [0, 0, 0], [1] * 5)


def test_streamed_memory_holds_no_query_by_gallery_matrix():
    # re_ranking_blocks runs re_ranking's neighbour search and sparse steps with the
    # same allocations minus raw_qg (q x g float32, which re_ranking holds from the
    # search to the end), so re_ranking's peak is at least theirs plus q x g. In the
    # Jaccard step re_ranking holds q x g and the temporaries of one chunk of all q rows
    # (q <= 2^23 / g and fewer than 2^22 triples here); the streamed path holds one
    # (block_size, g) block and the temporaries of at most block_size of those rows.
    # So the streamed peak is at most re_ranking's peak minus its q x g output plus one
    # block, at both sizes. The bound is loose only by the difference of the Jaccard
    # temporaries (measured 0.04-0.19 MB at these sizes), less than q x g (0.19 and
    # 0.48 MB): one q x g float32 array anywhere in the streamed path breaks it.
    rng = np.random.default_rng(22)
    dim, num_gallery, block_size = 16, 1200, 32
    centres = rng.standard_normal((300, dim)).astype(np.float32)

    def features(n):
        noise = rng.standard_normal((n, dim), dtype=np.float32)
        return centres[rng.integers(0, 300, n)] + 0.5 * noise

    def consume(qf, gf):
        total = 0.0
        for _, _, block in rerank.re_ranking_blocks(qf, gf, block_size=block_size):
            total += float(block.sum())
        return total

    gf = features(num_gallery)
    block_bytes = 4 * block_size * num_gallery
    for num_query in (40, 100):
        qf = features(num_query)
        _, streamed = _traced_peak(consume, qf, gf)
        out, whole = _traced_peak(rerank.re_ranking, qf, gf, block_size=block_size)
        assert out.nbytes == 4 * num_query * num_gallery
        assert streamed <= whole - out.nbytes + block_bytes, \
            (num_query, streamed, whole, out.nbytes)
