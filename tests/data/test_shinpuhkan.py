"""Shinpuhkan2014: reader, miniature and conversion (training only)."""

from __future__ import annotations

import shutil
from pathlib import Path

import miniature_checks as checks
from spreid_tf.data import manifest


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "shinpuhkan")
    assert synthetic_stats["shinpuhkan"].mismatches(m) == []
    # 4 persons x 4 cameras x 2 tracklets - a zero-byte and a corrupt JPEG; train only.
    assert checks.counts(m) == {"train": (30, 4, 16)}
    assert m.skipped_by_reason == {"not an image file": 1, "bad filename": 2, "zero-byte file": 1,
                                      "corrupt image": 1}
    checks.check_shards(converted_root / "shinpuhkan", "shinpuhkan")


def test_images_in_per_person_folders_are_read_too(synthetic_stats, tmp_path):
    data = tmp_path / "Shinpuhkan2014dataset"
    shutil.copytree(Path(synthetic_stats["shinpuhkan"].root) / "Shinpuhkan2014dataset", data)
    for path in sorted((data / "images").glob("00[12]_*.jpg")):
        (data / "images" / path.name[:3]).mkdir(exist_ok=True)
        path.rename(data / "images" / path.name[:3] / path.name)
    flat = checks.read("shinpuhkan", synthetic_stats["shinpuhkan"].root)
    nested = checks.read("shinpuhkan", tmp_path)
    assert sorted(nested.splits) == ["train"]
    assert sorted((r.person_id, r.camera_id) for r in nested.splits["train"]) == \
        sorted((r.person_id, r.camera_id) for r in flat.splits["train"])
    assert any(r.relpath.startswith("images/001/") for r in nested.splits["train"])
    assert checks.read("shinpuhkan", tmp_path, split="all").splits.keys() == {"train"}


def test_missing_root_and_images_fail_at_once(synthetic_stats, tmp_path):
    data = Path(synthetic_stats["shinpuhkan"].root) / "Shinpuhkan2014dataset"
    checks.check_layout_errors("shinpuhkan", data, tmp_path, "images", "PPP_CC_")
