"""PRID2011 single-shot: reader, miniature and conversion."""

from __future__ import annotations

from pathlib import Path

import miniature_checks as checks
from spreid_tf.data import manifest
from spreid_tf.data.synthetic import prid2011 as miniature


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "prid2011")
    assert synthetic_stats["prid2011"].mismatches(m) == []
    # 100 train ids x 2 - 1 corrupt; 100 queries; gallery 100 + 12 cam_b-only - 1 zero-byte.
    assert checks.counts(m) == {"train": (199, 100, 2), "query": (100, 100, 1), "gallery": (111, 111, 1)}
    assert m.info["num_unused_cam_a_only"] == 5
    assert m.skipped_by_reason == {"not an image file": 1, "bad filename": 1, "zero-byte file": 1,
                                      "corrupt image": 1}
    checks.check_shards(converted_root / "prid2011", "prid2011")


def test_split_all_keeps_cam_b_only_people_apart(tmp_path):
    root = tmp_path / "raw"
    expected = miniature.write(root, 0, {"split": "all"})
    m = checks.convert("prid2011", root, tmp_path / "out", split="all")
    assert expected.mismatches(m) == []
    # 200 shared + 5 cam_a-only + 12 cam_b-only people - the zero-byte one.
    assert checks.counts(m) == {"train": (415, 216, 2), "query": (0, 0, 0), "gallery": (0, 0, 0)}
    pids = {r["filename"]: r["pid"] for r in checks.examples(tmp_path / "out" / "prid2011", "train")}
    assert pids["single_shot/cam_a/person_0201.png"] == 201
    assert pids["single_shot/cam_b/person_0201.png"] == 10201
    assert pids["single_shot/cam_a/person_0200.png"] == pids["single_shot/cam_b/person_0200.png"] == 200


def test_torchreid_protocol(synthetic_stats):
    root = synthetic_stats["prid2011"].root
    result = checks.read("prid2011", root)
    train = {r.person_id for r in result.splits["train"]}
    query = {r.person_id for r in result.splits["query"]}
    gallery = {r.person_id for r in result.splits["gallery"]}
    assert len(train) == len(query) == 100 and train | query == set(range(1, 201))
    assert gallery == query | {10000 + n for n in range(201, 213)}
    assert {r.camera_id for r in result.splits["query"]} == {0}
    assert len(result.info["splits"]) == 10
    assert checks.read("prid2011", root, split_index=9).info["splits"] == result.info["splits"]


def test_missing_root_and_cam_b_fail_at_once(synthetic_stats, tmp_path):
    data = Path(synthetic_stats["prid2011"].root) / "prid_2011"
    checks.check_layout_errors("prid2011", data, tmp_path, "single_shot/cam_b", "person_0001.png")
