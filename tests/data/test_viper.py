"""VIPeR: reader, miniature and conversion."""

from __future__ import annotations

from pathlib import Path

import miniature_checks as checks
from spreid_tf.data import manifest
from spreid_tf.data.synthetic import viper as miniature


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "viper")
    assert synthetic_stats["viper"].mismatches(m) == []
    # 12 pairs, 6 train / 6 test; the zero-byte and corrupt images fall in train in split 0.
    assert checks.counts(m) == {"train": (10, 6, 2), "query": (6, 6, 1), "gallery": (6, 6, 1)}
    assert m.skipped_by_reason == {"not an image file": 1, "bad filename": 1, "missing file": 1,
                                      "zero-byte file": 1, "corrupt image": 1}
    assert m.splits["train"].num_transcoded_to_png == 10  # BMP is stored as lossless PNG
    checks.check_shards(converted_root / "viper", "viper")


def test_split_all(tmp_path):
    root = tmp_path / "raw"
    expected = miniature.write(root, 0, {"split": "all"})
    m = checks.convert("viper", root, tmp_path / "out", split="all")
    assert expected.mismatches(m) == []
    assert checks.counts(m) == {"train": (22, 12, 2), "query": (0, 0, 0), "gallery": (0, 0, 0)}


def test_pairs_by_number_and_seeded_splits(synthetic_stats):
    root = synthetic_stats["viper"].root
    result = checks.read("viper", root)
    records = [r for s in result.splits.values() for r in s]
    pids = {}
    for r in records:
        pids.setdefault(r.person_id, []).append(r)
    # One image per camera per person, matched by number (as torchreid's sorted order).
    assert all(sorted(r.camera_id for r in rs) == [0, 1] for rs in pids.values())
    assert all(len({Path(r.relpath).name.split("_")[0] for r in rs}) == 1 for rs in pids.values())
    assert min(pids) == 1  # 000_*.bmp is person 1
    assert result.info["num_pairs"] == 12 and len(result.info["splits"]) == 10
    for split in result.info["splits"]:
        assert len(split["train"]) == len(split["test"]) == 6
        assert not set(split["train"]) & set(split["test"])
    assert checks.read("viper", root, seed=3).info["splits"] != result.info["splits"]
    assert checks.read("viper", root).info == result.info


def test_missing_root_and_cam_b_fail_at_once(synthetic_stats, tmp_path):
    data = Path(synthetic_stats["viper"].root) / "VIPeR"
    checks.check_layout_errors("viper", data, tmp_path, "cam_b", "cam_a/  000_45.bmp")
