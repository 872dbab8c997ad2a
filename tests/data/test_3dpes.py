"""3DPeS: reader, miniature and conversion."""

from __future__ import annotations

import shutil
from pathlib import Path

import miniature_checks as checks
from spreid_tf.data import manifest
from spreid_tf.data.synthetic import pes3d as miniature


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "3dpes")
    assert synthetic_stats["3dpes"].mismatches(m) == []
    assert checks.counts(m) == {"train": (19, 5, 8), "query": (5, 5, 4), "gallery": (14, 5, 5)}
    assert m.skipped_by_reason == {"not an image file": 1, "bad filename": 2, "zero-byte file": 1,
                                      "corrupt image": 1}
    checks.check_shards(converted_root / "3dpes", "3dpes")


def test_split_all(tmp_path):
    root = tmp_path / "raw"
    expected = miniature.write(root, 0, {"split": "all"})
    m = checks.convert("3dpes", root, tmp_path / "out", split="all")
    assert expected.mismatches(m) == []
    assert checks.counts(m) == {"train": (38, 10, 8), "query": (0, 0, 0), "gallery": (0, 0, 0)}


def test_one_query_per_test_id_and_cameras_from_names(synthetic_stats):
    root = synthetic_stats["3dpes"].root
    result = checks.read("3dpes", root)
    query, gallery = result.splits["query"], result.splits["gallery"]
    assert len(query) == len({r.person_id for r in query}) == 5
    assert {r.person_id for r in gallery} == {r.person_id for r in query}
    assert sorted(r.relpath for r in query) == result.info["query_images"]
    for r in query + gallery + result.splits["train"]:
        person, camera = Path(r.relpath).name.split("_")[:2]
        assert (r.person_id, r.camera_id) == (int(person), int(camera) - 1)
    other = checks.read("3dpes", root, split_index=2)
    assert other.info["query_images"] != result.info["query_images"]


def test_missing_root_and_rgb_fail_at_once(synthetic_stats, tmp_path):
    data = Path(synthetic_stats["3dpes"].root) / "3DPeS"
    checks.check_layout_errors("3dpes", data, tmp_path, "RGB", "_FRAME_")


def test_camera_token_with_b_suffix(synthetic_stats, tmp_path):
    """torchreid's regex allows names such as 012_4_B_FRAME_80_RGB.bmp: camera 4."""
    data = tmp_path / "3DPeS"
    shutil.copytree(Path(synthetic_stats["3dpes"].root) / "3DPeS", data)
    source = sorted((data / "RGB").glob("001_*_RGB.bmp"))[0]
    shutil.copy(source, data / "RGB" / "012_4_B_FRAME_80_RGB.bmp")
    result = checks.read("3dpes", tmp_path, split="all")
    added = [r for r in result.splits["train"] if r.relpath == "RGB/012_4_B_FRAME_80_RGB.bmp"]
    assert [(r.person_id, r.camera_id) for r in added] == [(12, 3)]
