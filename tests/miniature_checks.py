"""Checks shared by the tests of the small benchmarks' and CUHK03's readers.

Imported by name (tests/conftest.py puts this folder on sys.path).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tensorflow as tf

from spreid_tf.data import manifest as manifest_lib
from spreid_tf.data import registry, schema
from spreid_tf.data.convert import convert_dataset
from spreid_tf.data.records import DatasetLayoutError


def counts(manifest: dict) -> dict[str, tuple[int, int, int]]:
    """split -> (num_images, num_ids, num_cameras) from a manifest."""
    return {s: (v.num_images, v.num_ids, v.num_cameras) for s, v in manifest.splits.items()}


def convert(name: str, root, out: Path, **options) -> dict:
    """Converts `name` from `root` into `out/<name>` with one shard per split."""
    return convert_dataset(name, root, out, num_shards=1, **options)


def examples(converted_dir: Path, split: str) -> list[dict]:
    """The parsed Examples of a converted split (image bytes left out)."""
    rows = []
    for path in manifest_lib.split_shards(converted_dir, split):
        for serialized in tf.data.TFRecordDataset(str(path)):
            ex = schema.parse_reid_example(serialized)
            rows.append({"filename": ex[schema.IMAGE_FILENAME].numpy().decode(),
                         "format": ex[schema.IMAGE_FORMAT].numpy().decode(),
                         "label": int(ex[schema.CLASS_LABEL]), "pid": int(ex[schema.PERSON_ID]),
                         "cam": int(ex[schema.CAMERA_ID]), "dataset": ex[schema.PERSON_DATASET].numpy().decode(),
                         "height": int(ex[schema.IMAGE_HEIGHT]), "width": int(ex[schema.IMAGE_WIDTH])})
    return rows


def check_shards(converted_dir: Path, name: str) -> None:
    """The shards hold what the manifest says: counts, dataset name, labels and PNG/JPEG only."""
    m = manifest_lib.load_manifest(converted_dir)
    for split, entry in m.splits.items():
        rows = examples(converted_dir, split)
        assert len(rows) == entry.num_images, split
        assert len({r["pid"] for r in rows}) == entry.num_ids, split
        assert {r["dataset"] for r in rows} <= {name}
        assert {r["format"] for r in rows} <= {"png", "jpeg"}
        if split == "train":
            assert sorted({r["label"] for r in rows}) == list(range(entry.num_ids))
            assert all(entry.label_to_person_id[r["label"]] == r["pid"] for r in rows)
        else:
            assert {r["label"] for r in rows} <= {-1}


def check_layout_errors(name: str, data_dir: Path, tmp_path: Path, remove: str, expected_fragment: str) -> None:
    """A missing root, and a copy of `data_dir` without `remove`, fail at once naming the path."""
    with pytest.raises(DatasetLayoutError) as error:
        convert_dataset(name, tmp_path / "absent", tmp_path / "out")
    assert str(tmp_path / "absent") in str(error.value)
    assert "Expected layout" in str(error.value)
    copy = tmp_path / data_dir.name
    shutil.copytree(data_dir, copy)
    target = copy / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetLayoutError) as error:
        convert_dataset(name, copy, tmp_path / "out")
    assert str(target) in str(error.value)
    assert expected_fragment in str(error.value)  # the expected tree is drawn
    assert not (tmp_path / "out" / name).exists()


def read(name: str, root, **options):
    return registry.get(name).read(Path(root), **options)
