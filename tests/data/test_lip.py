"""LIP: parsing reader, miniature, and exact mask round trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from spreid_tf.data import manifest, schema
from spreid_tf.data.convert import convert_dataset
from spreid_tf.data.records import DatasetLayoutError


def test_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "lip")
    assert synthetic_stats["lip"].mismatches(m) == []
    assert m.kind == "parsing"
    assert {s: v.num_images for s, v in m.splits.items()} == {"train": 12, "val": 5}


def test_masks_round_trip_exactly(converted_root, synthetic_stats):
    source = Path(synthetic_stats["lip"].root) / "LIP"
    count = 0
    for split in ("train", "val"):
        shards = [str(p) for p in manifest.split_shards(converted_root / "lip", split)]
        for serialized in tf.data.TFRecordDataset(shards):
            ex = schema.parse_parsing_example(serialized)
            name = ex[schema.IMAGE_FILENAME].numpy().decode()
            assert ex[schema.IMAGE_ENCODED].numpy() == (source / name).read_bytes()
            mask = tf.io.decode_png(ex[schema.MASK_ENCODED], channels=1).numpy()[..., 0]
            mask_path = source / "TrainVal_parsing_annotations" / f"{split}_segmentations" / (Path(name).stem + ".png")
            np.testing.assert_array_equal(mask, cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED))
            image = tf.io.decode_jpeg(ex[schema.IMAGE_ENCODED]).numpy()
            assert image.shape[:2] == mask.shape == (ex[schema.IMAGE_HEIGHT], ex[schema.IMAGE_WIDTH])
            assert mask.max() < 20 and (mask > 0).any()
            count += 1
    assert count == 17


def test_doubly_unpacked_zips_and_missing_annotations(synthetic_stats, tmp_path):
    source = Path(synthetic_stats["lip"].root) / "LIP"
    raw = tmp_path / "LIP"
    shutil.copytree(source / "TrainVal_images", raw / "TrainVal_images" / "TrainVal_images")
    with pytest.raises(DatasetLayoutError, match="TrainVal_parsing_annotations"):
        convert_dataset("lip", tmp_path, tmp_path / "out")
    shutil.copytree(source / "TrainVal_parsing_annotations",
                    raw / "TrainVal_parsing_annotations" / "TrainVal_parsing_annotations")
    m = convert_dataset("lip", tmp_path, tmp_path / "out")
    assert synthetic_stats["lip"].mismatches(m) == []
