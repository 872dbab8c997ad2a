"""Tests for spreid_tf.search (faiss): exact search against a float64 reference, approximate
recall, save and load, and the base install's independence from faiss."""

import os
import subprocess
import sys

import numpy as np
import pytest

from spreid_tf import search

pytest.importorskip("faiss")

U = 2.0 ** -24


def _clustered(rng, num, dim=32, num_ids=40, noise=0.6):
    centres = np.random.default_rng(99).standard_normal((num_ids, dim))
    pids = rng.integers(0, num_ids, num)
    x = centres[pids] + noise * rng.standard_normal((num, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), pids


def _reference(queries, gallery):
    """float64 euclidean distances, and per query the rows by (distance, index)."""
    q, g = queries.astype(np.float64), gallery.astype(np.float64)
    d = np.sqrt(np.maximum((q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2 * q @ g.T, 0.0))
    return d, np.argsort(d, axis=1, kind="stable")


def _squared_bound(queries, gallery):
    # faiss computes |q|^2 + |g|^2 - 2 q.g in float32: forward error <= gamma_n (|q| + |g|)^2 with
    # n = 2 dim (Higham), whatever the summation order; plus the final float32 rounding of the value.
    n = 2 * queries.shape[1]
    gamma = n * U / (1 - n * U)
    norm = np.linalg.norm(queries, axis=1).max() + np.linalg.norm(gallery, axis=1).max()
    return (gamma + U) * norm ** 2


def _assert_exact(distances, rows, queries, gallery, k):
    """Every returned row is a true k-nearest neighbour, in order, up to float32 rounding."""
    ref_d, ref_order = _reference(queries, gallery)
    bound = _squared_bound(queries, gallery)
    got_sq = np.take_along_axis(ref_d, rows, 1) ** 2
    want_sq = np.take_along_axis(ref_d, ref_order[:, :k], 1) ** 2
    # A row may differ from the reference only where two distances are within rounding of each other.
    np.testing.assert_allclose(got_sq, want_sq, rtol=0, atol=2 * bound)
    np.testing.assert_allclose(distances.astype(np.float64) ** 2, got_sq, rtol=0, atol=bound + 4 * U)
    assert all(len(set(r)) == k for r in rows)
    return np.mean([len(set(a) & set(b)) / k for a, b in zip(rows, ref_order[:, :k])])


def test_exact_index_equals_brute_force():
    rng = np.random.default_rng(0)
    gallery, _ = _clustered(rng, 700)
    queries, _ = _clustered(rng, 60)
    index = search.build_index(gallery, "exact", filenames=[f"g{i}" for i in range(700)])
    assert len(index) == 700 and index.config.factory() == "Flat"
    distances, rows = index.search(queries, top_k=10)
    assert distances.dtype == np.float32 and rows.dtype == np.int64 and rows.shape == (60, 10)
    assert _assert_exact(distances, rows, queries, gallery, 10) == 1.0
    # The same answer as the package's brute-force search (batch_infer --query).
    from spreid_tf.evaluation import protocols

    bf_rows, bf_dist = protocols.nearest(queries, gallery, 10)
    np.testing.assert_array_equal(rows, bf_rows)
    np.testing.assert_allclose(distances, bf_dist, rtol=0, atol=1e-6)
    # top_k beyond the gallery is capped at its size.
    assert index.search(queries[:2], top_k=5000)[1].shape == (2, 700)


def test_exhaustive_ivf_is_exact_and_approximate_recall_is_reported():
    rng = np.random.default_rng(1)
    gallery, _ = _clustered(rng, 4000)
    queries, _ = _clustered(rng, 100)
    # Scanning every cell with the exact refine is exact search through the ivf code path.
    full = search.build_index(gallery, "ivf", nlist=16, nprobe=16, refine="flat")
    distances, rows = full.search(queries, 10)
    assert _assert_exact(distances, rows, queries, gallery, 10) == 1.0
    # So is a pq index whose shortlist (k_factor x 10) is the whole gallery, re-ranked exactly.
    pq = search.build_index(gallery, "pq", pq_m=8, refine="flat", k_factor=400)
    assert pq.config.factory() == "PQ8x4fs,RFlat"
    reduced = search.IndexConfig(kind="pq", dim=32, pca_dim=16, pq_m=8)
    assert reduced.factory() == "PCAR16,PQ8x4fs,Refine(SQ8)" and reduced.k_factor == 100
    assert search.IndexConfig(kind="hnsw", dim=32).k_factor == 20
    distances, rows = pq.search(queries, 10)
    assert _assert_exact(distances, rows, queries, gallery, 10) == 1.0
    recalls = {}
    for name, kwargs in {"ivf nprobe=4 of 32": dict(kind="ivf", nlist=32, nprobe=4, refine="none"),
                         "ivf pca16 + sq8 refine": dict(kind="ivf", nlist=32, nprobe=8, pca_dim=16),
                         "hnsw": dict(kind="hnsw", ef_search=64),
                         "pq pca16 + sq8 refine": dict(kind="pq", pca_dim=16, pq_m=8)}.items():
        _, rows = search.build_index(gallery, **kwargs).search(queries, 10)
        _, ref_order = _reference(queries, gallery)
        recalls[name] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, ref_order[:, :10])])
    print("recall@10 against exact search:", recalls)
    # A smoke floor (a broken index scores near 10/4000 = 0.0025): benchmarks/search.py measures recall.
    assert min(recalls.values()) > 0.5, recalls


def test_save_and_load_keep_vectors_names_ids_and_knobs(tmp_path):
    rng = np.random.default_rng(2)
    gallery, pids = _clustered(rng, 2000)
    queries, _ = _clustered(rng, 20)
    names = np.array([f"cam{i % 3}/img{i}.jpg" for i in range(2000)])
    index = search.SearchIndex(search.IndexConfig(kind="hnsw", dim=32, pca_dim=16, ef_search=40))
    index.train(gallery)
    # Added in two parts, as a gallery too big for memory would be.
    index.add(gallery[:1500], filenames=names[:1500], person_ids=pids[:1500], camera_ids=np.arange(1500) % 3)
    index.add(gallery[1500:], filenames=names[1500:], person_ids=pids[1500:], camera_ids=np.arange(1500, 2000) % 3)
    index.set_search_parameters(ef_search=50, k_factor=4)
    folder = tmp_path / "index"
    index.save(folder)
    assert sorted(os.listdir(folder)) == ["entries.npz", "index.faiss", "index.json"]  # no temporaries
    loaded = search.SearchIndex.load(folder)
    assert loaded.config == index.config and loaded.config.refine == "sq8" and loaded.config.ef_search == 50
    np.testing.assert_array_equal(loaded.filenames, names)
    np.testing.assert_array_equal(loaded.person_ids, pids)
    np.testing.assert_array_equal(loaded.camera_ids, np.arange(2000) % 3)
    for a, b in zip(index.search(queries, 7), loaded.search(queries, 7)):
        np.testing.assert_array_equal(a, b)


def test_errors(tmp_path):
    x = np.random.default_rng(3).standard_normal((100, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="index kind must be one of"):
        search.build_index(x, "lsh")
    with pytest.raises(ValueError, match=r"pca_dim must be in \[1, 8\]"):
        search.build_index(x, "ivf", pca_dim=9)
    with pytest.raises(ValueError, match=r"pq_m=3 must divide the 8 dimensions it codes \(the embedding"):
        search.build_index(x, "pq", pq_m=3)
    with pytest.raises(ValueError, match="a pq index needs >= 16 training vectors .* got 10: use kind='exact'"):
        search.build_index(x[:10], "pq", pq_m=8)
    with pytest.raises(ValueError, match="needs >= 390 training vectors"):
        search.build_index(x, "ivf", nlist=10)
    index = search.build_index(x, "exact")
    with pytest.raises(ValueError, match="queries are 4-D but the index holds 8-D"):
        index.search(np.zeros((2, 4)), 3)
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        index.search(x[:2], 0)
    with pytest.raises(ValueError, match="NaN or inf"):
        index.search(np.full((1, 8), np.nan), 3)
    with pytest.raises(FileNotFoundError, match="is not a search index folder: no .*index.faiss"):
        search.SearchIndex.load(tmp_path)


def test_missing_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(ImportError, match=r'pip install -e "\.\[search\]"'):
        search.require_faiss()


def test_base_modules_do_not_import_faiss():
    code = ("import sys; import spreid_tf.search, spreid_tf.infer, spreid_tf.metrics, spreid_tf.rerank; "
            "assert 'faiss' not in sys.modules, 'faiss imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
