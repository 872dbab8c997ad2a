"""The shared conversion machinery: checks, sharding, labels, manifest, atomicity, merging."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from spreid_tf.data import convert, manifest, merge, registry, schema
from spreid_tf.data.records import (REASON_CORRUPT, REASON_NOT_IMAGE, REASON_ZERO_BYTE, DatasetLayoutError, ReadResult,
                                    Record, require_dir)
from spreid_tf.data.synthetic import files, people


def _examples(shards: list[Path]) -> list[dict]:
    out = []
    for serialized in tf.data.TFRecordDataset([str(p) for p in shards]):
        ex = schema.parse_reid_example(serialized)
        out.append({k: v.numpy() for k, v in ex.items()})
    return out


def test_require_dir_names_path_and_tree(tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        require_dir(tmp_path / "nope", "root/\n  images/  a.jpg\n")
    assert str(tmp_path / "nope") in str(info.value)
    assert "images/  a.jpg" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_record_needs_exactly_one_source():
    with pytest.raises(ValueError):
        Record("a.jpg", 1, 0, "x")
    with pytest.raises(ValueError):
        Record("a.jpg", 1, 0, "x", path="/a.jpg", image_bytes=b"\xff")


def test_check_image_good_and_bad():
    rgb, _ = people.render(1, 2, 3, 40, 20)
    jpeg = files.encode(rgb, ".jpg")
    checked = convert.check_image(jpeg)
    assert (checked.image_format, checked.height, checked.width) == ("jpeg", 40, 20)
    assert checked.encoded is jpeg  # stored as is
    png = convert.check_image(files.encode(rgb, ".png"))
    assert png.image_format == "png" and not png.transcoded
    bmp = convert.check_image(files.encode(rgb, ".bmp"))
    assert bmp.transcoded and bmp.image_format == "png"
    np.testing.assert_array_equal(tf.io.decode_png(bmp.encoded).numpy(), rgb)  # lossless
    for data, reason in [(b"", REASON_ZERO_BYTE), (b"\xd0\xcf\x11\xe0" + b"\0" * 60, REASON_NOT_IMAGE),
                         (jpeg[: len(jpeg) // 2], REASON_CORRUPT)]:
        with pytest.raises(convert.BadImageError) as info:
            convert.check_image(data)
        assert info.value.reason.startswith(reason)


def test_shards_hold_original_bytes_and_contiguous_labels(converted_root, synthetic_stats):
    out = converted_root / "market1501"
    m = manifest.load_manifest(out)
    source = Path(synthetic_stats["market1501"].root) / "Market-1501-v15.09.15"
    train = _examples(manifest.split_shards(out, "train"))
    assert list(m.splits["train"].shards) == [schema.shard_name("train", i, 2) for i in range(2)]
    assert len(train) == m.splits["train"].num_images
    pids = list(m.splits["train"].label_to_person_id)
    assert pids == sorted(pids)
    for ex in train:
        assert pids[ex[schema.CLASS_LABEL]] == ex[schema.PERSON_ID]
        name = ex[schema.IMAGE_FILENAME].decode()
        assert ex[schema.IMAGE_ENCODED] == (source / name).read_bytes()
        assert ex[schema.IMAGE_FORMAT] == b"jpeg" and ex[schema.PERSON_DATASET] == b"market1501"
        assert (ex[schema.IMAGE_HEIGHT], ex[schema.IMAGE_WIDTH]) == (128, 64)
    assert sorted({ex[schema.CLASS_LABEL] for ex in train}) == list(range(len(pids)))
    gallery = _examples(manifest.split_shards(out, "gallery"))
    assert {ex[schema.CLASS_LABEL] for ex in gallery} == {-1}


def test_rerun_is_a_noop_and_overwrite_replaces(synthetic_stats, tmp_path, caplog):
    root = synthetic_stats["dukemtmcreid"].root
    first = convert.convert_dataset("dukemtmcreid", root, tmp_path, num_shards=1)
    stamp = (tmp_path / "dukemtmcreid" / schema.MANIFEST_FILENAME).stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="spreid_tf.data.convert"):
        again = convert.convert_dataset("dukemtmcreid", root, tmp_path, num_shards=3)
    assert again == first
    assert "skipping" in caplog.text
    assert (tmp_path / "dukemtmcreid" / schema.MANIFEST_FILENAME).stat().st_mtime_ns == stamp
    replaced = convert.convert_dataset("dukemtmcreid", root, tmp_path, num_shards=3, overwrite=True)
    assert len(replaced.splits["train"].shards) == 3
    assert sorted(p.name for p in (tmp_path / "dukemtmcreid").iterdir()) == sorted(
        [schema.MANIFEST_FILENAME] + [n for s in replaced.splits.values() for n in s.shards])
    assert [p.name for p in tmp_path.iterdir()] == ["dukemtmcreid"]  # no leftovers


def test_another_source_is_refused_without_overwrite(synthetic_stats, tmp_path):
    convert.convert_dataset("dukemtmcreid", synthetic_stats["dukemtmcreid"].root, tmp_path)
    other = tmp_path / "copy"
    shutil.copytree(synthetic_stats["dukemtmcreid"].root, other)
    with pytest.raises(FileExistsError, match="overwrite"):
        convert.convert_dataset("dukemtmcreid", other, tmp_path)


def _fail_after(monkeypatch, n: int) -> None:
    real = schema.make_reid_example
    calls = {"n": 0}

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] > n:
            raise KeyboardInterrupt("simulated interruption")
        return real(**kwargs)

    monkeypatch.setattr(schema, "make_reid_example", flaky)


def _acceptable(out: Path) -> list[Path]:
    """Folders under `out` a pipeline would accept, and finished-looking shards anywhere."""
    found = [p.parent for p in out.rglob(schema.MANIFEST_FILENAME)]
    return found + [p for p in out.rglob("*" + schema.SHARD_SUFFIX)]


def test_interrupted_conversion_leaves_nothing_acceptable(synthetic_stats, tmp_path, monkeypatch):
    _fail_after(monkeypatch, 20)
    with pytest.raises(KeyboardInterrupt):
        convert.convert_dataset("market1501", synthetic_stats["market1501"].root, tmp_path, num_shards=4)
    assert _acceptable(tmp_path) == []
    assert not (tmp_path / "market1501").exists()


def test_killed_conversion_leaves_no_manifest(synthetic_stats, tmp_path, monkeypatch):
    # A hard kill skips the clean-up: the hidden temporary folder stays, without a manifest.
    monkeypatch.setattr(convert.shutil, "rmtree", lambda *a, **k: None)
    _fail_after(monkeypatch, 33)
    with pytest.raises(KeyboardInterrupt):
        convert.convert_dataset("market1501", synthetic_stats["market1501"].root, tmp_path, num_shards=2)
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".market1501.incomplete-")
    assert _acceptable(tmp_path) == []
    assert list(leftovers[0].glob("*.tmp"))  # work in progress, under names no reader matches
    with pytest.raises(manifest.IncompleteConversionError):
        manifest.load_manifest(leftovers[0])
    assert not (tmp_path / "market1501").exists()


def test_failed_overwrite_keeps_the_old_conversion(synthetic_stats, tmp_path, monkeypatch):
    root = synthetic_stats["market1501"].root
    old = convert.convert_dataset("market1501", root, tmp_path)
    _fail_after(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        convert.convert_dataset("market1501", root, tmp_path, overwrite=True)
    assert manifest.load_manifest(tmp_path / "market1501") == old
    assert [p.name for p in tmp_path.iterdir()] == ["market1501"]


def test_in_memory_and_bmp_images(tmp_path, monkeypatch):
    """Records carrying encoded bytes (CUHK03's .mat arrays) and BMP files (VIPeR, 3DPeS)."""
    rgb, _ = people.render(5, 5, 5, 48, 24)
    bmp = files.write_image(tmp_path / "raw" / "a.bmp", rgb)
    png = files.encode(rgb, ".png")

    def read(root: Path) -> ReadResult:
        return ReadResult(splits={"train": [Record("a.bmp", 3, 0, "toy", path=str(bmp)),
                                            Record("mat/1", 9, 1, "toy", image_bytes=png)]},
                          info={"note": "toy"})

    monkeypatch.setitem(registry.DATASETS, "toy", registry.DatasetInfo(
        name="toy", read=read, expected_tree="raw/", splits=("train",)))
    m = convert.convert_dataset("toy", tmp_path / "raw", tmp_path / "out")
    assert m.splits["train"].num_transcoded_to_png == 1
    examples = _examples(manifest.split_shards(tmp_path / "out" / "toy", "train"))
    by_name = {ex[schema.IMAGE_FILENAME]: ex for ex in examples}
    assert by_name[b"mat/1"][schema.IMAGE_ENCODED] == png
    assert by_name[b"a.bmp"][schema.IMAGE_FORMAT] == b"png"
    np.testing.assert_array_equal(tf.io.decode_png(by_name[b"a.bmp"][schema.IMAGE_ENCODED]).numpy(), rgb)
    assert [by_name[b"a.bmp"][schema.CLASS_LABEL], by_name[b"mat/1"][schema.CLASS_LABEL]] == [0, 1]


def test_label_map_is_contiguous_and_disjoint(converted_root, tmp_path):
    names = ["market1501", "dukemtmcreid", "cuhksysu", "msmt17"]
    dirs = [converted_root / n for n in names]
    label_map = merge.build_label_map(dirs, tmp_path / "merged")
    manifests = {n: manifest.load_manifest(converted_root / n) for n in names}
    sizes = [manifests[n].splits["train"].num_ids for n in names]
    assert label_map.num_identities == sum(sizes) == len(label_map.labels)
    assert list(label_map.label_offsets.values()) == list(np.cumsum([0] + sizes[:-1]))
    assert len(set(label_map.labels)) == label_map.num_identities  # disjoint
    # MSMT17 train ids and Market ids share numbers but not labels.
    assert label_map.label("market1501", 2) != label_map.label("msmt17", 2)
    loaded = merge.load_label_map(tmp_path / "merged" / merge.LABEL_MAP_FILENAME)
    assert loaded == label_map
    assert json.loads((tmp_path / "merged" / "label_map.json").read_text())["num_identities"] == sum(sizes)
    # A training example's label plus its dataset offset names its (dataset, person id).
    for name in names:
        for ex in _examples(list(loaded.datasets[name].train_shards))[:5]:
            merged = ex[schema.CLASS_LABEL] + loaded.label_offsets[name]
            assert loaded.identity(merged) == (name, ex[schema.PERSON_ID])


def test_label_map_refuses_duplicates_and_parsing(converted_root, tmp_path):
    with pytest.raises(ValueError):
        merge.build_label_map([converted_root / "market1501"] * 2, tmp_path)
    with pytest.raises(ValueError):
        merge.build_label_map([converted_root / "lip"], tmp_path)


def test_renderer_mask_matches_image():
    rgb, mask = people.render(3, 4, 5, 128, 64)
    assert rgb.shape == (128, 64, 3) and rgb.dtype == np.uint8 and mask.shape == (128, 64)
    labels = set(np.unique(mask).tolist())
    assert {0, 2, 5, 13, 18, 19} <= labels and labels <= set(range(20))
    # The person's left arm/leg/shoe appear on the image's right side.
    for left, right in ((14, 15), (16, 17), (18, 19)):
        if (mask == left).any() and (mask == right).any():
            assert np.nonzero(mask == left)[1].mean() > np.nonzero(mask == right)[1].mean()
    assert cv2.imencode(".jpg", rgb)[0]


def test_identities_are_recognisable_across_cameras():
    """Mean clothes colours alone re-identify most people seen by another camera."""
    def feature(person: int, camera: int) -> np.ndarray:
        rgb, mask = people.render(person, camera, 0, 128, 64)
        parts = [mask == 5, np.isin(mask, (9, 12)), np.isin(mask, (18, 19))]
        return np.concatenate([rgb[p].mean(0) if p.any() else np.zeros(3) for p in parts])

    query = np.stack([feature(p, 1) for p in range(20)])
    gallery = np.stack([feature(p, 2) for p in range(20)])
    distances = np.linalg.norm(query[:, None] - gallery[None], axis=-1)
    assert (distances.argmin(1) == np.arange(20)).mean() >= 0.5  # chance is 0.05


def test_convert_merged_builds_the_label_map(synthetic_root, tmp_path):
    names = ("market1501", "cuhksysu")
    label_map = convert.convert_merged(synthetic_root, tmp_path, names=names, num_shards=1)
    assert label_map.path == tmp_path / merge.LABEL_MAP_FILENAME
    assert label_map.num_identities == 8 + 10
    assert label_map.label_offsets == {"market1501": 0, "cuhksysu": 8}
    assert label_map.identity(8) == ("cuhksysu", 1)
    with pytest.raises(DatasetLayoutError, match="nothing"):
        convert.convert_merged(tmp_path / "nothing", tmp_path / "out", names=("market1501",))
    with pytest.raises(KeyError, match="unknown_benchmark"):
        convert.convert_merged(synthetic_root, tmp_path / "out", names=("unknown_benchmark",))


def test_convert_script(synthetic_stats, tmp_path):
    import subprocess
    import sys

    script = Path(__file__).parents[2] / "datasets" / "convert.py"
    result = subprocess.run(
        [sys.executable, str(script), "--dataset=msmt17", f"--root={synthetic_stats['msmt17'].root}",
         f"--output_dir={tmp_path}", "--reader_option=include_val=false", "--num_shards=2"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    m = manifest.load_manifest(tmp_path / "msmt17")
    assert m.reader_options == {"include_val": False}
    assert m.splits["train"].num_images == 15
    assert "msmt17/train: checked" in result.stderr  # progress lines


def test_all_ten_miniatures_merge(synthetic_root, tmp_path):
    missing = [n for n in registry.MERGED_DATASETS if n not in registry.DATASETS]
    if missing:
        pytest.skip(f"readers not registered yet: {missing}")
    label_map = convert.convert_merged(synthetic_root, tmp_path, num_shards=1)
    assert list(label_map.datasets) == list(registry.MERGED_DATASETS)
    sizes = [manifest.load_manifest(tmp_path / n).splits["train"].num_ids for n in registry.MERGED_DATASETS]
    assert label_map.num_identities == sum(sizes)
    assert len(set(label_map.labels)) == label_map.num_identities


def test_manifest_round_trip_and_an_old_one_names_the_reconvert_command(converted_root, tmp_path):
    m = manifest.load_manifest(converted_root / "market1501")
    assert manifest.Manifest.from_json(m.to_json()) == m
    assert m.protocol == "market1501" and m.num_skipped == len(m.skipped)
    old = tmp_path / "market1501"
    shutil.copytree(converted_root / "market1501", old)
    document = json.loads((old / schema.MANIFEST_FILENAME).read_text())
    document["schema_version"] = 1
    (old / schema.MANIFEST_FILENAME).write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"manifest schema 1, this one reads 2\); convert the benchmark again: "
                                         r"python datasets/convert.py --dataset=market1501 --root=\S+ "
                                         rf"--output_dir={tmp_path} --overwrite"):
        manifest.load_manifest(old)


def test_cuhk03_classic_and_767_700_conversions_name_their_protocols(tmp_path):
    from spreid_tf.data.synthetic import write_benchmark

    write_benchmark("cuhk03", tmp_path / "raw")
    classic = convert.convert_dataset("cuhk03", tmp_path / "raw", tmp_path / "classic")
    new = convert.convert_dataset("cuhk03", tmp_path / "raw", tmp_path / "new", protocol="767/700")
    assert (classic.protocol, new.protocol) == ("cuhk03_classic", "market1501")
    assert manifest.load_manifest(tmp_path / "classic" / "cuhk03").protocol == "cuhk03_classic"
