"""DukeMTMC-reID: reader, miniature and conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

from spreid_tf.data import manifest, registry
from spreid_tf.data.records import DatasetLayoutError


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "dukemtmcreid")
    assert synthetic_stats["dukemtmcreid"].mismatches(m) == []
    counts = {s: (v.num_images, v.num_ids, v.num_cameras) for s, v in m.splits.items()}
    assert counts == {"train": (24, 6, 8), "query": (4, 4, 4), "gallery": (12, 6, 6)}


def test_gallery_has_distractor_ids_and_eight_cameras(synthetic_stats):
    result = registry.DATASETS["dukemtmcreid"].read(Path(synthetic_stats["dukemtmcreid"].root))
    query_ids = {r.person_id for r in result.splits["query"]}
    gallery_ids = {r.person_id for r in result.splits["gallery"]}
    assert query_ids < gallery_ids and gallery_ids - query_ids == {2, 4}
    assert {r.camera_id for r in result.splits["train"]} == set(range(8))


def test_missing_root(tmp_path):
    with pytest.raises(DatasetLayoutError, match="DukeMTMC-reID"):
        registry.DATASETS["dukemtmcreid"].read(tmp_path)
