"""MSMT17: list-file reader, miniature and conversion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spreid_tf.data import manifest, registry
from spreid_tf.data.records import DatasetLayoutError


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "msmt17")
    assert synthetic_stats["msmt17"].mismatches(m) == []
    assert m.splits["train"].num_images == 17  # 5 ids x 3 + 2 val images


def test_camera_from_third_field_and_val_option(synthetic_stats):
    read = registry.DATASETS["msmt17"].read
    root = Path(synthetic_stats["msmt17"].root)
    result = read(root)
    for record in result.splits["query"] + result.splits["gallery"]:
        assert record.camera_id == int(Path(record.relpath).name.split("_")[2]) - 1
        assert record.relpath.startswith("test/")
    without_val = read(root / "MSMT17_V1", include_val=False)
    assert len(without_val.splits["train"]) == len(result.splits["train"]) - 2
    assert 5 not in {r.person_id for r in without_val.splits["train"]}


def test_missing_list_file_fails_at_once(synthetic_stats, tmp_path):
    raw = tmp_path / "MSMT17_V1"
    shutil.copytree(Path(synthetic_stats["msmt17"].root) / "MSMT17_V1", raw)
    (raw / "list_gallery.txt").unlink()
    with pytest.raises(DatasetLayoutError) as info:
        registry.DATASETS["msmt17"].read(tmp_path)
    assert str(raw / "list_gallery.txt") in str(info.value) and "list_query.txt" in str(info.value)
