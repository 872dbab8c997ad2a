"""CUHK02: reader, miniature and conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

import miniature_checks as checks
from spreid_tf.data import manifest
from spreid_tf.data.synthetic import cuhk02 as miniature


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "cuhk02")
    assert synthetic_stats["cuhk02"].mismatches(m) == []
    # P1-P4: 12 ids x 4 images - 1 zero-byte; P5: 4 ids x 2 images per camera - 1 corrupt.
    assert checks.counts(m) == {"train": (47, 12, 8), "query": (7, 4, 1), "gallery": (8, 4, 1)}
    assert m.skipped_by_reason == {"not an image file": 1, "bad filename": 1, "zero-byte file": 1,
                                      "corrupt image": 1}
    checks.check_shards(converted_root / "cuhk02", "cuhk02")


def test_split_all_keys_ids_by_camera_pair(tmp_path):
    root = tmp_path / "raw"
    expected = miniature.write(root, 0, {"split": "all"})
    m = checks.convert("cuhk02", root, tmp_path / "out", split="all")
    assert expected.mismatches(m) == []
    # Every pair numbers its persons from 001: 16 ids only because ids are keyed by pair.
    assert checks.counts(m) == {"train": (62, 16, 10), "query": (0, 0, 0), "gallery": (0, 0, 0)}
    rows = checks.examples(tmp_path / "out" / "cuhk02", "train")
    by_name = {r["filename"]: (r["pid"], r["cam"]) for r in rows}
    assert by_name["Dataset/P1/cam1/001_1.png"] == (10001, 0)
    assert by_name["Dataset/P3/cam2/001_3.png"] == (30001, 5)
    assert by_name["Dataset/P5/cam2/004_4.png"] == (50004, 9)


def test_standard_protocol_tests_on_p5(synthetic_stats):
    result = checks.read("cuhk02", synthetic_stats["cuhk02"].root)
    assert {r.relpath.split("/")[1] for r in result.splits["train"]} == {"P1", "P2", "P3", "P4"}
    assert {r.relpath.rsplit("/", 1)[0] for r in result.splits["query"]} == {"Dataset/P5/cam1"}
    assert {r.relpath.rsplit("/", 1)[0] for r in result.splits["gallery"]} == {"Dataset/P5/cam2"}
    assert result.info["test_pair"] == "P5"
    with pytest.raises(ValueError):
        checks.read("cuhk02", synthetic_stats["cuhk02"].root, split_index=1)  # one fixed split


def test_missing_root_and_camera_folder_fail_at_once(synthetic_stats, tmp_path):
    data = Path(synthetic_stats["cuhk02"].root) / "cuhk02"
    checks.check_layout_errors("cuhk02", data, tmp_path, "Dataset/P4/cam2", "P1/ cam1/")
