"""Market-1501: reader, miniature and conversion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spreid_tf.data import manifest, registry
from spreid_tf.data.convert import convert_dataset
from spreid_tf.data.records import DatasetLayoutError


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "market1501")
    assert synthetic_stats["market1501"].mismatches(m) == []
    # The same numbers, written out: 8 train ids x 4; 5 queries; 5 x 3 + 3 distractors.
    counts = {s: (v.num_images, v.num_ids, v.num_cameras) for s, v in m.splits.items()}
    assert counts == {"train": (32, 8, 6), "query": (5, 5, 5), "gallery": (18, 6, 6)}
    assert m.info["num_junk_ignored"]["gallery"] == 2
    assert m.info["num_distractors"]["gallery"] == 3
    assert m.skipped_by_reason == {"not an image file": 2, "bad filename": 2, "zero-byte file": 1,
                                      "corrupt image": 1}


def test_reader_accepts_both_root_forms(synthetic_stats):
    parent = Path(synthetic_stats["market1501"].root)
    a = registry.DATASETS["market1501"].read(parent)
    b = registry.DATASETS["market1501"].read(parent / "Market-1501-v15.09.15")
    assert a == b
    assert all(r.relpath.split("/")[0] in ("bounding_box_train", "query", "bounding_box_test")
               for split in a.splits.values() for r in split)
    assert {r.person_id for r in a.splits["gallery"]} >= {0}
    assert -1 not in {r.person_id for split in a.splits.values() for r in split}
    assert {r.camera_id for r in a.splits["train"]} == set(range(6))


def test_missing_root_and_subfolder_fail_at_once(synthetic_stats, tmp_path):
    with pytest.raises(DatasetLayoutError, match="bounding_box_train"):
        convert_dataset("market1501", tmp_path / "absent", tmp_path / "out")
    raw = tmp_path / "raw"
    shutil.copytree(Path(synthetic_stats["market1501"].root) / "Market-1501-v15.09.15", raw,
                    ignore=shutil.ignore_patterns("bounding_box_test"))
    with pytest.raises(DatasetLayoutError) as info:
        convert_dataset("market1501", raw, tmp_path / "out")
    assert str(raw / "bounding_box_test") in str(info.value)
    assert "query/" in str(info.value)  # the expected tree is drawn
    assert not (tmp_path / "out").exists()
