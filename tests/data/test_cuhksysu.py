"""CUHK-SYSU person crops: reader, miniature and conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

from spreid_tf.data import manifest, registry
from spreid_tf.data.records import DatasetLayoutError


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "cuhksysu")
    assert synthetic_stats["cuhksysu"].mismatches(m) == []
    assert list(m.splits) == ["train"]
    assert list(m.splits["train"].label_to_person_id) == [1, 2, 15, 77, 130, 2041, 5000, 9999, 11422, 11934]


def test_ids_from_names_and_one_camera(synthetic_stats):
    result = registry.DATASETS["cuhksysu"].read(Path(synthetic_stats["cuhksysu"].root) / "cuhksysu")
    assert {r.camera_id for r in result.splits["train"]} == {0}
    for r in result.splits["train"]:
        assert Path(r.relpath).name.startswith(f"p{r.person_id}_s")


def test_missing_cropped_images(tmp_path):
    (tmp_path / "cuhksysu").mkdir()
    with pytest.raises(DatasetLayoutError, match="cropped_images"):
        registry.DATASETS["cuhksysu"].read(tmp_path)
