"""CUHK01: reader, miniature and conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

import miniature_checks as checks
from spreid_tf.data import manifest
from spreid_tf.data.readers import _protocols
from spreid_tf.data.synthetic import cuhk01 as miniature


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "cuhk01")
    assert synthetic_stats["cuhk01"].mismatches(m) == []
    # 12 ids x 4 images; split 0 trains on 6 ids, among them the two with a bad file.
    assert checks.counts(m) == {"train": (22, 6, 2), "query": (12, 6, 1), "gallery": (12, 6, 1)}
    assert m.skipped_by_reason == {"not an image file": 1, "bad filename": 2, "zero-byte file": 1,
                                      "corrupt image": 1}
    checks.check_shards(converted_root / "cuhk01", "cuhk01")


def test_split_all_puts_every_image_in_train(synthetic_stats, tmp_path):
    root = tmp_path / "raw"
    expected = miniature.write(root, 0, {"split": "all"})
    m = checks.convert("cuhk01", root, tmp_path / "out", split="all")
    assert expected.mismatches(m) == []
    assert checks.counts(m) == {"train": (46, 12, 2), "query": (0, 0, 0), "gallery": (0, 0, 0)}


def test_ten_seeded_splits_and_cameras(synthetic_stats):
    root = synthetic_stats["cuhk01"].root
    result = checks.read("cuhk01", root)
    splits = result.info["splits"]
    assert len(splits) == _protocols.NUM_RANDOM_SPLITS == 10
    for split in splits:
        assert len(split["train"]) == 6 and len(split["test"]) == 6
        assert sorted(split["train"] + split["test"]) == list(range(1, 13))
    assert checks.read("cuhk01", root).info == result.info  # deterministic
    assert checks.read("cuhk01", root, seed=1).info["splits"] != splits
    other = checks.read("cuhk01", root, split_index=4)
    assert {r.person_id for r in other.splits["train"]} == set(splits[4]["train"])
    by_name = {Path(r.relpath).name: r.camera_id for s in result.splits.values() for r in s}
    assert by_name["0001001.png"] == by_name["0001002.png"] == 0
    assert by_name["0001003.png"] == by_name["0001004.png"] == 1
    assert {r.camera_id for r in result.splits["query"]} == {0}
    assert {r.camera_id for r in result.splits["gallery"]} == {1}
    with pytest.raises(ValueError):
        checks.read("cuhk01", root, split_index=10)
    with pytest.raises(ValueError):
        checks.read("cuhk01", root, split="test")


def test_missing_root_and_campus_fail_at_once(synthetic_stats, tmp_path):
    data = Path(synthetic_stats["cuhk01"].root) / "cuhk01"
    checks.check_layout_errors("cuhk01", data, tmp_path, "campus", "0001001.png")
