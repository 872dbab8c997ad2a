"""Tests for spreid_tf.metrics against hand-computed cases and plain references."""

import pathlib
import sys
import tracemalloc

import numpy as np
import pytest

from spreid_tf import metrics

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # tests/_reference.py
import _reference as ref  # noqa: E402


# ------------------------------------------------------------------ hand-computed


def _hand_case():
    """3 queries, 8 gallery entries; every protocol rule changes the answer.

    gallery  pid cam   d(q0)  d(q1)  d(q2)
      g0      1   0    0.10   0.90   0.30   q0: same pid + camera -> excluded
      g1      0   1    0.20   0.80   0.20   distractor: a wrong match
      g2      1   1    0.30   0.70   0.40   q0: positive
      g3     -1   1    0.05   0.01   0.10   junk: removed
      g4      2   0    0.40   0.35   0.50   q1: positive
      g5      1   2    0.60   0.20   0.60   q0: positive
      g6      3   0    0.50   0.25   0.05   q2: same pid + camera -> excluded
      g7      2   1    0.70   0.05   0.70   q1: same pid + camera -> excluded
    q0 = (pid 1, cam 0), q1 = (pid 2, cam 1), q2 = (pid 3, cam 0).
    """
    distmat = np.array([
        [0.10, 0.20, 0.30, 0.05, 0.40, 0.60, 0.50, 0.70],
        [0.90, 0.80, 0.70, 0.01, 0.35, 0.20, 0.25, 0.05],
        [0.30, 0.20, 0.40, 0.10, 0.50, 0.60, 0.05, 0.70],
    ])
    q_pids, q_cams = np.array([1, 2, 3]), np.array([0, 1, 0])
    g_pids = np.array([1, 0, 1, -1, 2, 1, 3, 2])
    g_cams = np.array([0, 1, 1, 1, 0, 2, 0, 1])
    return distmat, q_pids, g_pids, q_cams, g_cams


def test_hand_computed_market_protocol():
    distmat, q_pids, g_pids, q_cams, g_cams = _hand_case()
    result = metrics.evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    # q0 ranked valid list: g1 x, g2 +, g4 x, g6 x, g5 +, g7 x (g0 excluded,
    #   g3 junk): positives at ranks 2 and 5 -> AP = (1/2 + 2/5) / 2 = 0.45,
    #   INP = 2/5, first hit at rank 2.
    # q1: g5 x, g6 x, g4 +, g2 x, g1 x, g0 x (g7 excluded, g3 junk): positive at
    #   rank 3 -> AP = 1/3, INP = 1/3, first hit at rank 3.
    # q2: its only same-pid entry g6 shares its camera: skipped.
    assert result.num_valid_queries == 2
    assert result.num_skipped_queries == 1
    assert result.mAP == pytest.approx((0.45 + 1 / 3) / 2, abs=1e-15)
    assert result.mINP == pytest.approx((0.4 + 1 / 3) / 2, abs=1e-15)
    # 7 gallery entries once junk is removed cap max_rank at 7; q0 and q1 have
    # 6 valid entries each and stay at 1 after them.
    np.testing.assert_array_equal(result.cmc, [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    cmc, mAP, mINP, num_valid = ref.ref_eval_market1501(distmat, q_pids, g_pids, q_cams,
                                                       g_cams, max_rank=10)
    np.testing.assert_allclose(cmc, result.cmc)
    assert (mAP, mINP, num_valid) == pytest.approx((result.mAP, result.mINP, 2))


def test_hand_computed_from_features():
    # 1-D features, distance |q - g|. The query (pid 5, cam 0) is at 0; the
    # gallery: g0 at 1 distractor, g1 at 2 and g2 at 3 positives, g3 at -0.5
    # pid 5 on camera 0 (excluded). Valid list g0 x, g1 +, g2 +: positives at
    # ranks 2 and 3 -> AP = (1/2 + 2/3) / 2 = 7/12, INP = 2/3.
    q = np.array([[0.0]])
    g = np.array([[1.0], [2.0], [3.0], [-0.5]])
    result = metrics.evaluate_features(q, g, [5], [0, 5, 5, 5], [0], [1, 1, 2, 0],
                                       metric="euclidean", max_rank=3)
    assert result.mAP == pytest.approx(7 / 12)
    assert result.mINP == pytest.approx(2 / 3)
    np.testing.assert_array_equal(result.cmc, [0.0, 1.0, 1.0])


# --------------------------------------------------------------------- references


def _random_case(seed, num_query=60, num_gallery=300, num_ids=30, dim=24):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids + 1, dim))
    q_pids = rng.integers(1, num_ids + 1, num_query)
    g_pids = rng.integers(-1, num_ids + 1, num_gallery)  # -1 junk, 0 distractor
    q_cams = rng.integers(0, 4, num_query)
    g_cams = rng.integers(0, 4, num_gallery)
    qf = centres[q_pids] + 1.2 * rng.standard_normal((num_query, dim))
    gf = centres[np.maximum(g_pids, 0)] + 1.2 * rng.standard_normal((num_gallery, dim))
    # Some queries of an identity absent from the gallery: skipped.
    q_pids[:3] = num_ids + 7
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def _assert_same(result, reference):
    cmc, mAP, mINP, num_valid = reference
    assert result.num_valid_queries == num_valid
    # The CMC is a count of queries: compare counts exactly.
    np.testing.assert_array_equal(np.rint(result.cmc * num_valid), np.rint(cmc * num_valid))
    # AP sums the same terms in another order: float64 rounding only.
    assert result.mAP == pytest.approx(mAP, rel=1e-12, abs=1e-15)
    assert result.mINP == pytest.approx(mINP, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("metric", metrics.METRICS)
def test_matches_reference_random(seed, metric):
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_case(seed)
    distmat = metrics.pairwise_distance(qf, gf, metric)
    expected = ref.ref_eval_market1501(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20)
    result = metrics.evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20,
                                   chunk_size=16)
    _assert_same(result, expected)
    assert result.num_skipped_queries == len(q_pids) - expected[3] >= 3
    # float64 distances take the lexsort path.
    d64 = ref.ref_pairwise_distance(qf, gf, metric)
    _assert_same(metrics.evaluate_rank(d64, q_pids, g_pids, q_cams, g_cams, max_rank=20),
                 ref.ref_eval_market1501(d64, q_pids, g_pids, q_cams, g_cams, max_rank=20))


def test_rank_blocks_equal_distance_matrix():
    # Blocks of query rows (sizes that do not divide 60, chunks smaller and larger
    # than a block), junk and same-camera gallery entries, skipped queries.
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_case(6)
    d = metrics.pairwise_distance(qf, gf)
    ids = (q_pids, g_pids, q_cams, g_cams)
    whole = metrics.evaluate_rank(d, *ids, max_rank=20)
    _assert_same(whole, ref.ref_eval_market1501(d, *ids, max_rank=20))

    def blocks(size):
        return ((s, min(s + size, len(d)), d[s:s + size]) for s in range(0, len(d), size))

    for size, chunk in ((7, 3), (60, 16), (1, 1), (13, 1024)):
        got = metrics.evaluate_rank_blocks(blocks(size), *ids, max_rank=20, chunk_size=chunk)
        # Ranks are exact integers and per-query AP / INP are gathered in query
        # order, as evaluate_rank does: equal, not approximately.
        np.testing.assert_array_equal(got.cmc, whole.cmc)
        assert got.mAP == whole.mAP and got.mINP == whole.mINP
        assert (got.num_valid_queries, got.num_skipped_queries) == \
            (whole.num_valid_queries, whole.num_skipped_queries)


def test_rank_blocks_errors():
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_case(7, num_query=23, num_gallery=40)
    d = metrics.pairwise_distance(qf, gf)
    ids = (q_pids, g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="in order"):
        metrics.evaluate_rank_blocks([(0, 10, d[:10]), (11, 23, d[11:])], *ids)
    with pytest.raises(ValueError, match="covered query rows 0:10 of 23"):
        metrics.evaluate_rank_blocks([(0, 10, d[:10])], *ids)
    with pytest.raises(ValueError, match="has shape"):
        metrics.evaluate_rank_blocks([(0, 23, d[:, :30])], *ids)
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.evaluate_rank_blocks([(0, 23, np.full((23, 40), np.nan))], *ids)
    with pytest.raises(ValueError, match="g_camids has length 3"):
        metrics.evaluate_rank_blocks([(0, 23, d)], q_pids, g_pids, q_cams, g_cams[:3])


@pytest.mark.parametrize("metric", metrics.METRICS)
def test_features_equal_distance_matrix(metric):
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_case(5, num_query=80)
    whole = metrics.evaluate_rank(metrics.pairwise_distance(qf, gf, metric), q_pids, g_pids,
                                  q_cams, g_cams)
    chunked = metrics.evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, metric,
                                        chunk_size=7)
    np.testing.assert_array_equal(chunked.cmc, whole.cmc)
    assert chunked.mAP == whole.mAP and chunked.mINP == whole.mINP
    assert chunked.num_skipped_queries == whole.num_skipped_queries


def test_ties_broken_by_gallery_index():
    # Distances from 4 values only: ties everywhere, including positive vs
    # negative. A stable sort is the reference for this order.
    rng = np.random.default_rng(11)
    distmat = rng.integers(0, 4, (40, 120)).astype(np.float32)
    q_pids, g_pids = rng.integers(1, 6, 40), rng.integers(-1, 6, 120)
    q_cams, g_cams = rng.integers(0, 3, 40), rng.integers(0, 3, 120)
    result = metrics.evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=30)
    expected = ref.ref_eval_market1501(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=30,
                                       sort_kind="stable")
    _assert_same(result, expected)
    # Same through the float64 path.
    _assert_same(metrics.evaluate_rank(distmat.astype(np.float64), q_pids, g_pids, q_cams,
                                       g_cams, max_rank=30), expected)


def test_negative_and_signed_zero_distances():
    # Similarities turned into distances can be negative; -0.0 equals +0.0.
    distmat = np.array([[-0.0, 0.0, -1.0, 2.0, -3.0]], dtype=np.float32)
    q_pids, g_pids = [1], [1, 2, 1, 2, 2]
    result = metrics.evaluate_rank(distmat, q_pids, g_pids, [0], [1, 1, 1, 1, 1])
    # Order: g4 (-3) x, g2 (-1) +, g0 (-0.0) +, g1 (0.0) x, g3 x.
    assert result.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
    expected = ref.ref_eval_market1501(distmat, np.array(q_pids), np.array(g_pids),
                                       np.array([0]), np.ones(5, int), sort_kind="stable")
    _assert_same(result, expected)


@pytest.mark.parametrize("metric", metrics.METRICS)
def test_pairwise_distance_matches_float64(metric):
    rng = np.random.default_rng(3)
    q, g = rng.standard_normal((13, 40)), rng.standard_normal((17, 40))
    g[0] = q[0]  # a zero distance
    got = metrics.pairwise_distance(q, g, metric)
    assert got.dtype == np.float32 and got.shape == (13, 17)
    want = ref.ref_pairwise_distance(q, g, metric)
    if metric == "euclidean":
        # float32 |q|^2 + |g|^2 - 2 q.g: forward error at most gamma_n (|q| + |g|)^2 with
        # gamma_n = n u / (1 - n u), u = 2^-24, n = 2 d (Higham, dot products). The square root
        # turns an error e of the square into at most min(sqrt(e), e / distance): loose near a
        # zero distance (cancellation), tight elsewhere. The bound does not depend on the BLAS.
        n, u = 2 * q.shape[1], 2.0 ** -24
        norms = np.linalg.norm(q, axis=1)[:, None] + np.linalg.norm(g, axis=1)[None, :]
        squared_error = n * u / (1 - n * u) * norms ** 2
        bound = np.minimum(np.sqrt(squared_error), squared_error / np.maximum(want, 1e-30)) + 2 * u * want
        assert np.all(np.abs(got - want) <= bound), np.max(np.abs(got - want) - bound)
        assert got[0, 0] == 0.0  # within the bound of zero: recomputed exactly
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert got.min() >= 0.0


def test_cosine_of_a_zero_vector_is_one():
    got = metrics.pairwise_distance(np.zeros((1, 4)), np.eye(4), "cosine")
    np.testing.assert_allclose(got, 1.0)


# ----------------------------------------------------------------- CUHK03 classic


def _cuhk03_split(seed, num_ids=12):
    # Classic CUHK03: camera-A images query camera-B images of the test ids.
    rng = np.random.default_rng(seed)
    q_pids = np.repeat(np.arange(num_ids), 2)
    g_pids = np.repeat(np.arange(num_ids), rng.integers(1, 4, num_ids))
    qf = rng.standard_normal((num_ids, 8))[q_pids] + rng.standard_normal((len(q_pids), 8))
    gf = qf[2 * g_pids] + 1.5 * rng.standard_normal((len(g_pids), 8))
    return {"distmat": metrics.pairwise_distance(qf, gf), "q_pids": q_pids, "g_pids": g_pids,
            "q_camids": np.zeros(len(q_pids), int), "g_camids": np.ones(len(g_pids), int)}


def test_cuhk03_classic_matches_reference():
    split = _cuhk03_split(0)
    # One query whose only gallery image shares its camera: skipped.
    split["g_camids"][split["g_pids"] == 3] = 0
    result = metrics.evaluate_cuhk03_classic(**split, max_rank=10, num_repeats=5, seed=4)
    cmc, num_valid = ref.ref_eval_cuhk03_classic(
        split["distmat"], split["q_pids"], split["g_pids"], split["q_camids"],
        split["g_camids"], max_rank=10, num_repeats=5, rng=np.random.default_rng(4))
    np.testing.assert_allclose(result.cmc, cmc, rtol=0, atol=1e-12)
    assert result.num_valid_queries == num_valid == len(split["q_pids"]) - 2
    full = metrics.evaluate_rank(**split, max_rank=10)
    assert result.mAP == full.mAP and result.mINP == full.mINP
    # Another seed draws other gallery samples.
    other = metrics.evaluate_cuhk03_classic(**split, max_rank=10, num_repeats=5, seed=5)
    assert not np.array_equal(other.cmc, result.cmc)


def test_cuhk03_classic_splits_average():
    splits = [_cuhk03_split(s) for s in range(3)]
    result = metrics.evaluate_cuhk03_classic_splits(splits, max_rank=5, num_repeats=4, seed=9)
    seeds = np.random.SeedSequence(9).spawn(3)
    cmcs, maps = [], []
    for split, child in zip(splits, seeds):
        cmc, _ = ref.ref_eval_cuhk03_classic(
            split["distmat"], split["q_pids"], split["g_pids"], split["q_camids"],
            split["g_camids"], max_rank=5, num_repeats=4, rng=np.random.default_rng(child))
        cmcs.append(cmc)
        maps.append(ref.ref_eval_market1501(split["distmat"], split["q_pids"],
                                            split["g_pids"], split["q_camids"],
                                            split["g_camids"])[1])
    np.testing.assert_allclose(result.cmc, np.mean(cmcs, axis=0), atol=1e-12)
    assert result.mAP == pytest.approx(np.mean(maps), rel=1e-12)
    assert result.num_valid_queries == sum(len(s["q_pids"]) for s in splits)
    # Tuples work as well as mappings.
    as_tuples = [tuple(s[k] for k in ("distmat", "q_pids", "g_pids", "q_camids", "g_camids"))
                 for s in splits]
    again = metrics.evaluate_cuhk03_classic_splits(as_tuples, max_rank=5, num_repeats=4, seed=9)
    np.testing.assert_array_equal(again.cmc, result.cmc)


# ------------------------------------------------------------------------- errors


def test_errors_name_the_argument_and_shapes():
    d = np.zeros((3, 4))
    ok = dict(q_pids=[1, 2, 3], g_pids=[1, 2, 3, 4], q_camids=[0, 0, 0], g_camids=[1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"g_pids has length 3 .*\(3, 4\)"):
        metrics.evaluate_rank(d, **{**ok, "g_pids": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"q_camids has length 2"):
        metrics.evaluate_rank(d, **{**ok, "q_camids": [0, 0]})
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.evaluate_rank(np.full((3, 4), np.nan), **ok)
    with pytest.raises(ValueError, match="empty"):
        metrics.evaluate_rank(np.zeros((0, 4)), **{**ok, "q_pids": [], "q_camids": []})
    with pytest.raises(ValueError, match="junk"):
        metrics.evaluate_rank(d, **{**ok, "g_pids": [-1, -1, -1, -1]})
    with pytest.raises(ValueError, match="none of the 3 queries"):
        metrics.evaluate_rank(d, **{**ok, "g_pids": [7, 7, 7, 7]})
    with pytest.raises(ValueError, match="max_rank"):
        metrics.evaluate_rank(d, **ok, max_rank=0)

    q, g = np.zeros((3, 5)), np.ones((4, 5))
    with pytest.raises(ValueError, match=r"query_features \(shape \(3, 5\)\) has NaN or inf"):
        bad = q.copy()
        bad[1, 2] = np.inf
        metrics.evaluate_features(bad, g, **ok)
    with pytest.raises(ValueError, match=r"query \(3, 5\), gallery \(4, 6\)"):
        metrics.evaluate_features(q, np.ones((4, 6)), **ok)
    with pytest.raises(ValueError, match=r"gallery_features is empty"):
        metrics.evaluate_features(q, np.ones((0, 5)), **{**ok, "g_pids": [], "g_camids": []})
    with pytest.raises(ValueError, match=r"q_pids has length 2 but query_features \(shape"):
        metrics.evaluate_features(q, g, **{**ok, "q_pids": [1, 2]})
    with pytest.raises(ValueError, match="metric must be one of"):
        metrics.pairwise_distance(q, g, "manhattan")
    with pytest.raises(ValueError, match=r"gallery must be 2-D"):
        metrics.pairwise_distance(q, np.ones(5))
    with pytest.raises(ValueError, match="g_pids must be integers"):
        metrics.evaluate_rank(d, **{**ok, "g_pids": [1.5, 2, 3, 4]})


def test_memory_grows_with_the_rows_not_their_square():
    # evaluate_features holds one (chunk_size, g) distance block, per-chunk masks and keys of the
    # same shape, and arrays proportional to q or g; never the q x g matrix. Doubling both q and
    # g (chunk fixed) must at most double its memory, where the q x g float32 matrix would
    # quadruple. The clusters are far apart, so that the negatives nearer than a query's farthest
    # positive (a count that depends on the data, and grows faster than g when clusters overlap)
    # are few; 10% allowance for the rest.
    rng = np.random.default_rng(5)
    dim, chunk = 16, 64
    centres = rng.standard_normal((50, dim)).astype(np.float32)
    peaks = []
    for num_query, num_gallery in ((400, 2000), (800, 4000)):
        q_pids, g_pids = rng.integers(0, 50, num_query), rng.integers(0, 50, num_gallery)
        qf = centres[q_pids] + 0.1 * rng.standard_normal((num_query, dim), dtype=np.float32)
        gf = centres[g_pids] + 0.1 * rng.standard_normal((num_gallery, dim), dtype=np.float32)
        q_cams, g_cams = rng.integers(0, 3, num_query), rng.integers(0, 3, num_gallery)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            metrics.evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, chunk_size=chunk)
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()
    assert peaks[1] <= 2.2 * peaks[0], peaks
    assert peaks[1] < 4 * 800 * 4000, (peaks, "bytes of the q x g float32 matrix:", 4 * 800 * 4000)
