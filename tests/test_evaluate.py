"""The evaluation package: the report against independent references, caches, combined rows,
protocols, and one convention everywhere (training's eval.json == evaluate's results.json)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from spreid_tf import metrics, rerank, run_folder
from spreid_tf.data import convert, pipelines
from spreid_tf.data.manifest import split_shards
from spreid_tf.data.synthetic import write_benchmark
from spreid_tf.evaluation import features as features_lib
from spreid_tf.evaluation import protocols, reid
from spreid_tf.models import build_baseline_model, build_spreid_model
from spreid_tf.training import config as config_lib
from spreid_tf.training import reid as reid_training

SIZE = (80, 80)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    write_benchmark("market1501", root / "raw")
    convert.convert_dataset("market1501", root / "raw", root / "tf")
    return root / "tf" / "market1501"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    dirs = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        directory = tmp_path_factory.mktemp(f"model{seed}")
        build_baseline_model(3, input_size=SIZE).save(directory / run_folder.MODEL_FILENAME)
        dirs.append(directory)
    return dirs


def _reference(model_dir, converted, split):
    """Raw embeddings straight from the model (float64), with the ids, independent of `features`."""
    model = run_folder.load_model(model_dir)
    parts = {"embedding": [], "person_id": [], "camera_id": []}
    for batch in pipelines.eval_dataset([str(f) for f in split_shards(converted, split)], batch_size=4,
                                        image_size=SIZE):
        parts["embedding"].append(np.asarray(model(batch["image"], training=False)["embedding"], np.float64))
        parts["person_id"].append(batch["person_id"].numpy())
        parts["camera_id"].append(batch["camera_id"].numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _squared_distances(q, g):
    """Squared euclidean distances in float64: the reference the float32 pipeline is held to."""
    return ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)


def _distances(q, g):
    return np.sqrt(np.maximum(_squared_distances(q, g), 0.0))


def _bounds(qn, gn, ids, score):
    """The worst and the best result the float32 pipeline can report for the float64 unit rows qn, gn.

    The pipeline ranks by float32 |q|^2 + |g|^2 - 2 q.g of float32 unit rows. Its three dot products
    (terms of size 1, 1 and 2) are each within lambda sqrt(dim) 2^-24 of exact with probability at least
    1 - 2 exp(-lambda^2 / 2) whatever the BLAS's summation order (Higham and Mary's probabilistic
    bound; lambda = 8: 3e-14), where the worst-case gamma_dim = dim 2^-24 is a thousand times the
    error seen; add 64 ulps for the float32 normalisation (8 ulps per component, see the test above)
    and a few for the sums, the clip, the square root's rounding (which can tie neighbours) and the
    float64 shift here. Moving every same-identity entry away by twice that bound can only lose what
    the pipeline finds, moving them closer can only add: the two scores bracket the pipeline's,
    where a fixed tolerance breaks on the near ties of an untrained network.
    """
    slack = 2 * (4 * 8 * np.sqrt(qn.shape[1]) + 96) * 2.0 ** -24
    d2 = _squared_distances(qn, gn)
    same = np.asarray(ids[0])[:, None] == np.asarray(ids[1])[None, :]
    worst = score(np.where(same, d2 + slack, d2), *ids).as_dict()
    best = score(np.where(same, d2, d2 + slack), *ids).as_dict()
    return worst, best


def _assert_within(got, bounds, keys=("mAP", "cmc")):
    worst, best = bounds
    for key in keys:
        low, high, value = (np.atleast_1d(np.asarray(x[key], np.float64)) for x in (worst, best, got))
        assert np.all(low - 1e-12 <= value) and np.all(value <= high + 1e-12), (key, low, value, high)


def test_features_are_the_model_embedding_divided_by_its_norm(market, model_dirs):
    model = run_folder.load_model(model_dirs[0])
    got = features_lib.split_features(model, market, "query", batch_size=3)
    want = _reference(model_dirs[0], market, "query")
    # float32 division of a float32 embedding by its norm: relative error a few ulps (2^-24 each).
    np.testing.assert_allclose(got.embedding, _unit(want["embedding"]), rtol=0, atol=8 * 2.0 ** -24)
    np.testing.assert_array_equal(got.person_id, want["person_id"])
    assert got.embedding.dtype == np.float32 and len(got.filename) == len(got)


def test_reid_report_matches_an_independent_reference(market, model_dirs, tmp_path):
    out = tmp_path / "report"
    results = reid.evaluate_run(model_dirs[0], market, out, rerank_results=True, batch_size=5, num_worst=3,
                                rerank_options={"k1": 4, "k2": 2})
    q, g = (_reference(model_dirs[0], market, s) for s in ("query", "gallery"))
    qn, gn = _unit(q["embedding"]), _unit(g["embedding"])
    ids = (q["person_id"], g["person_id"], q["camera_id"], g["camera_id"])
    _assert_within(results["results"][model_dirs[0].name], _bounds(qn, gn, ids, metrics.evaluate_rank))
    reranked = rerank.re_ranking(qn.astype(np.float32), gn.astype(np.float32), k1=4, k2=2)
    expected_rr = metrics.evaluate_rank(reranked, q["person_id"], g["person_id"], q["camera_id"],
                                        g["camera_id"]).as_dict()
    assert results["results"][f"{model_dirs[0].name} + re-ranking"]["mAP"] == pytest.approx(expected_rr["mAP"],
                                                                                             abs=1e-6)
    assert json.loads((out / "results.json").read_text()) == results
    # Every results file names the protocol and the distance.
    assert results["protocol"] == "market1501" and results["metric"] == "euclidean"
    markdown = (out / "results.md").read_text()
    assert "| mAP | rank-1 |" in markdown and "Market-1501 protocol, euclidean distance on l2-normalised" in markdown
    assert (out / "cmc.png").is_file() and len(results["ranked_lists"]) == 3
    assert all((out / p).is_file() for p in results["ranked_lists"])


def test_cached_features_are_reused(market, model_dirs, tmp_path, monkeypatch):
    reid.evaluate_run(model_dirs[1], market, tmp_path / "a", num_worst=1)
    # One cache per conversion: the name carries a hash of the conversion's path.
    assert len(list(model_dirs[1].glob("features_market1501_*_query.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("features were extracted again")

    monkeypatch.setattr(features_lib, "extract_features", fail)
    reid.evaluate_run(model_dirs[1], market, tmp_path / "b", num_worst=1)


def test_combined_rows_use_the_normalised_concatenation(market, model_dirs, tmp_path):
    results = reid.evaluate_run(model_dirs[0], market, tmp_path, combine_dirs=[model_dirs[1]], num_worst=1)
    q = [_reference(d, market, "query") for d in model_dirs]
    g = [_reference(d, market, "gallery") for d in model_dirs]
    qc = _unit(np.concatenate([_unit(x["embedding"]) for x in q], axis=1))
    gc = _unit(np.concatenate([_unit(x["embedding"]) for x in g], axis=1))
    ids = (q[0]["person_id"], g[0]["person_id"], q[0]["camera_id"], g[0]["camera_id"])
    names = [d.name for d in model_dirs]
    assert list(results["results"]) == names + [" + ".join(names)]
    _assert_within(results["results"][" + ".join(names)], _bounds(qc, gc, ids, metrics.evaluate_rank))
    for i, name in enumerate(names):  # each model alone, as without --combine
        alone = _bounds(_unit(q[i]["embedding"]), _unit(g[i]["embedding"]), ids, metrics.evaluate_rank)
        _assert_within(results["results"][name], alone)


def test_first_hit_ranks_by_hand():
    # gallery: pid 1 cam 0 (excluded for the query: same pid and camera), pid 2, pid 1 cam 1, junk.
    distmat = np.array([[0.1, 0.2, 0.3, 0.05], [0.9, 0.8, 0.7, 0.6]])
    ranks = protocols.first_hit_ranks(distmat, [1, 3], [1, 2, 1, -1], [0, 0], [0, 1, 1, 1])
    np.testing.assert_array_equal(ranks, [1, -1])


def test_nearest_against_float64_and_exact_self_distance():
    rng = np.random.default_rng(0)
    gallery = _unit(rng.standard_normal((50, 16))).astype(np.float32)
    query = np.concatenate([gallery[:3], _unit(rng.standard_normal((4, 16))).astype(np.float32)])
    indices, distances = protocols.nearest(query, gallery, top_k=5, chunk=3)
    want = _distances(query.astype(np.float64), gallery.astype(np.float64))
    for row in range(len(query)):
        np.testing.assert_array_equal(indices[row], np.argsort(want[row], kind="stable")[:5])
    # float32 |q|^2 + |g|^2 - 2 q.g of unit 16-D vectors: error of d^2 <= gamma_32 * 4 ~ 7.6e-6, so
    # of d <= sqrt(7.6e-6) near 0 and ~7.6e-6 / (2 d) beyond; entries that close to 0 are recomputed.
    np.testing.assert_allclose(distances, np.take_along_axis(want, indices, 1), atol=3e-3)
    assert (distances[:3, 0] == 0.0).all() and (indices[:3, 0] == np.arange(3)).all()


@pytest.mark.slow
def test_cli_with_a_spreid_model_writes_parsing_figures(market, tmp_path):
    keras.utils.set_random_seed(0)
    build_spreid_model(3, input_size=(96, 80)).save(tmp_path / run_folder.MODEL_FILENAME)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", "spreid_tf.evaluate", f"--model_dir={tmp_path}", f"--data_dir={market.parent}",
         "--dataset=market1501", "--rerank", "--num_worst=2", "--batch_size=8"],
        capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| mAP | rank-1 |" in done.stdout and "re-ranking" in done.stdout
    assert "Scored with the Market-1501 protocol, euclidean distance" in done.stdout
    results = json.loads((tmp_path / "eval_market1501" / "results.json").read_text())
    assert len(results["parsing_figures"]) == 2
    assert all((tmp_path / "eval_market1501" / p).is_file() for p in results["parsing_figures"])


def test_protocol_comes_from_the_manifest(market, cuhk03_classic):
    from spreid_tf.data.manifest import load_manifest

    assert protocols.protocol_of(load_manifest(market)) == "market1501"
    assert protocols.protocol_of(load_manifest(cuhk03_classic)) == "cuhk03_classic"
    assert protocols.describe("cuhk03_classic") == ("CUHK03 classic single-shot protocol, euclidean distance on "
                                                    "l2-normalised embeddings")


@pytest.fixture(scope="module")
def cuhk03_classic(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuhk03")
    write_benchmark("cuhk03", root / "raw")
    convert.convert_dataset("cuhk03", root / "raw", root / "tf")
    return root / "tf" / "cuhk03"


def test_cuhk03_classic_conversion_is_scored_single_shot(model_dirs, cuhk03_classic, tmp_path):
    results = reid.evaluate_run(model_dirs[0], cuhk03_classic, tmp_path / "out", num_worst=1, use_cache=False)
    assert results["protocol"] == "cuhk03_classic"
    q, g = (_reference(model_dirs[0], cuhk03_classic, s) for s in ("query", "gallery"))
    ids = (q["person_id"], g["person_id"], q["camera_id"], g["camera_id"])
    (row,) = results["results"].values()
    _assert_within(row, _bounds(_unit(q["embedding"]), _unit(g["embedding"]), ids, metrics.evaluate_cuhk03_classic))


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["market1501", "cuhk03_classic"])
def test_training_eval_json_equals_evaluate_results(dataset, market, cuhk03_classic, tmp_path):
    converted = market if dataset == "market1501" else cuhk03_classic
    config = config_lib.ReidConfig(
        train_data=str(converted), backbone="mobilenet_v2_c3", input_size=(64, 32), weights=None,
        optimization=config_lib.OptimizationConfig(batch_size=4, total_steps=2, precise_bn_batches=1),
        runtime=config_lib.RuntimeConfig(checkpoint_every=2, log_every=1, seed=0), shuffle_buffer=16)
    summary = reid_training.train_and_evaluate(config, str(tmp_path / "run"))
    trained = json.loads((tmp_path / "run" / run_folder.EVAL_FILENAME).read_text())
    assert trained == json.loads(json.dumps(summary["eval"]))
    results = reid.evaluate_run(tmp_path / "run", converted, tmp_path / "report", num_worst=0, use_cache=False)
    (row,) = results["results"].values()
    for key in ("dataset", "protocol", "metric", "scored_with", "num_query", "num_gallery"):
        assert trained[key] == results[key], key
    assert {k: trained[k] for k in row} == row
