import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from spreid_tf import evaluate_lib, metrics, rerank
from spreid_tf.data import convert
from spreid_tf.data.manifest import split_shards
from spreid_tf.data.synthetic import write_benchmark
from spreid_tf.models import build_baseline_model, build_spreid_model, combine_embeddings

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
        build_baseline_model(3, input_size=SIZE).save(directory / "model.keras")
        dirs.append(directory)
    return dirs


def _reference_features(model_dir, market, split):
    model = evaluate_lib.load_model(model_dir)
    return evaluate_lib.extract_features(model, split_shards(market, split), SIZE, batch_size=4)


def test_reid_report_matches_the_metrics_on_directly_extracted_features(market, model_dirs, tmp_path):
    out = tmp_path / "report"
    results = evaluate_lib.evaluate_reid(model_dirs[0], market, out, rerank_results=True, batch_size=5,
                                         num_worst=3, rerank_options={"k1": 4, "k2": 2})
    q, g = (_reference_features(model_dirs[0], market, s) for s in ("query", "gallery"))
    expected = metrics.evaluate_features(q.embedding, g.embedding, q.person_id, g.person_id, q.camera_id,
                                         g.camera_id).as_dict()
    row = results["results"][model_dirs[0].name]
    assert row["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
    assert row["cmc"] == pytest.approx(expected["cmc"], abs=1e-6)
    reranked = rerank.re_ranking(q.embedding, g.embedding, k1=4, k2=2)
    expected_rr = metrics.evaluate_rank(reranked, q.person_id, g.person_id, q.camera_id, g.camera_id).as_dict()
    assert results["results"][f"{model_dirs[0].name} + re-ranking"]["mAP"] == pytest.approx(expected_rr["mAP"],
                                                                                             abs=1e-6)
    assert json.loads((out / "results.json").read_text()) == results
    assert "| mAP | rank-1 |" in (out / "results.md").read_text()
    assert (out / "cmc.png").is_file() and len(results["ranked_lists"]) == 3
    assert all((out / p).is_file() for p in results["ranked_lists"])


def test_cached_features_are_reused(market, model_dirs, tmp_path, monkeypatch):
    evaluate_lib.evaluate_reid(model_dirs[1], market, tmp_path / "a", num_worst=1)
    # One cache per conversion: the name carries a hash of the conversion's path.
    assert len(list(model_dirs[1].glob("features_market1501_*_query.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("features were extracted again")

    monkeypatch.setattr(evaluate_lib, "extract_features", fail)
    evaluate_lib.evaluate_reid(model_dirs[1], market, tmp_path / "b", num_worst=1)


def test_combined_rows_use_normalised_concatenation(market, model_dirs, tmp_path):
    results = evaluate_lib.evaluate_reid(model_dirs[0], market, tmp_path, combine_dirs=[model_dirs[1]],
                                         num_worst=1)
    q = [_reference_features(d, market, "query") for d in model_dirs]
    g = [_reference_features(d, market, "gallery") for d in model_dirs]
    qc = np.asarray(combine_embeddings(q[0].embedding, q[1].embedding))
    gc = np.asarray(combine_embeddings(g[0].embedding, g[1].embedding))
    expected = metrics.evaluate_features(qc, gc, q[0].person_id, g[0].person_id, q[0].camera_id,
                                         g[0].camera_id).as_dict()
    names = [d.name for d in model_dirs]
    assert list(results["results"]) == names + [" + ".join(names)]
    assert results["results"][" + ".join(names)]["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
    for i, name in enumerate(names):  # each model alone, as without --combine
        alone = metrics.evaluate_features(q[i].embedding, g[i].embedding, q[i].person_id, g[i].person_id,
                                          q[i].camera_id, g[i].camera_id).as_dict()
        assert results["results"][name]["mAP"] == pytest.approx(alone["mAP"], abs=1e-6)


def test_first_hit_ranks_by_hand():
    # gallery: pid 1 cam 0 (excluded for the query: same pid and camera), pid 2, pid 1 cam 1, junk.
    distmat = np.array([[0.1, 0.2, 0.3, 0.05], [0.9, 0.8, 0.7, 0.6]])
    ranks = evaluate_lib.first_hit_ranks(distmat, [1, 3], [1, 2, 1, -1], [0, 0], [0, 1, 1, 1])
    np.testing.assert_array_equal(ranks, [1, -1])


@pytest.mark.slow
def test_cli_with_a_spreid_model_writes_parsing_figures(market, tmp_path):
    keras.utils.set_random_seed(0)
    build_spreid_model(3, input_size=(96, 80)).save(tmp_path / "model.keras")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", "spreid_tf.evaluate", f"--model_dir={tmp_path}", f"--data_dir={market.parent}",
         "--dataset=market1501", "--rerank", "--num_worst=2", "--batch_size=8"],
        capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| mAP | rank-1 |" in done.stdout and "re-ranking" in done.stdout
    results = json.loads((tmp_path / "eval_market1501" / "results.json").read_text())
    assert len(results["parsing_figures"]) == 2
    assert all((tmp_path / "eval_market1501" / p).is_file() for p in results["parsing_figures"])


def test_protocol_follows_the_manifest():
    assert evaluate_lib.protocol_of({"dataset": "cuhk03", "info": {"protocol": "classic"}}) == "cuhk03_classic"
    assert evaluate_lib.protocol_of({"dataset": "cuhk03", "info": {"protocol": "767/700"}}) == "market1501"
    assert evaluate_lib.protocol_of({"dataset": "market1501", "info": {}}) == "market1501"


def test_cuhk03_classic_conversion_is_scored_single_shot(model_dirs, tmp_path):
    write_benchmark("cuhk03", tmp_path / "raw")
    convert.convert_dataset("cuhk03", tmp_path / "raw", tmp_path / "tf")
    converted = tmp_path / "tf" / "cuhk03"
    results = evaluate_lib.evaluate_reid(model_dirs[0], converted, tmp_path / "out", num_worst=1, use_cache=False)
    assert results["protocol"] == "cuhk03_classic"
    q, g = (_reference_features(model_dirs[0], converted, s) for s in ("query", "gallery"))
    distmat = metrics.pairwise_distance(q.embedding, g.embedding)
    expected = metrics.evaluate_cuhk03_classic(distmat, q.person_id, g.person_id, q.camera_id, g.camera_id)
    (row,) = results["results"].values()
    assert row["cmc"] == pytest.approx(expected.as_dict()["cmc"], abs=1e-9)
