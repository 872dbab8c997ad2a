"""The TensorFlow Datasets builders (spreid_tf.data.tfds) against the converter, and `tfds:` sources.

Every builder is built once, in-process, on its benchmark's miniature (the raw folder the
session's `converted_root` was converted from), with manual_dir at that folder; TFDS never
touches the network (GCS disabled, no downloads: the builders only read manual_dir).
"""

from __future__ import annotations

import ast
import hashlib
import socket
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import tensorflow as tf

tfds = pytest.importorskip("tensorflow_datasets")

from spreid_tf.data import manifest as manifest_lib  # noqa: E402
from spreid_tf.data import pipelines, registry, schema, tfds_source  # noqa: E402
from spreid_tf.data import tfds as spreid_tfds  # noqa: E402
from spreid_tf.data.convert import convert_dataset  # noqa: E402
from spreid_tf.data.records import REASON_CORRUPT  # noqa: E402
from spreid_tf.training import inputs  # noqa: E402

SKIP = tfds.decode.SkipDecoding()


def _download_config(manual_dir, **kwargs):
    return tfds.download.DownloadConfig(manual_dir=str(manual_dir), try_download_gcs=False, **kwargs)


def _no_network(*args, **kwargs):
    raise AssertionError(f"a test of spreid_tf.data.tfds opened a network connection: {args}")


@pytest.fixture(scope="module")
def tfds_dir(synthetic_stats, tmp_path_factory) -> Iterator[Path]:
    """data_dir holding every spreid_<name> builder's default config, built from the miniatures.

    While this module's tests run, GCS is off (TFDS 4.9.10's default, checked) and opening any
    socket connection fails the test.
    """
    assert tfds.core.utils.gcs_utils._is_gcs_disabled
    data_dir = tmp_path_factory.mktemp("tfds")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket.socket, "connect_ex", _no_network)
        for name, expected in synthetic_stats.items():
            builder = tfds.builder(spreid_tfds.builder_name(name), data_dir=str(data_dir))
            builder.download_and_prepare(download_config=_download_config(expected.root))
        yield data_dir


def _converter_rows(converted_dir: Path, split: str, kind: str) -> dict[str, dict]:
    """filename -> what the converter stored (bytes included) for one split."""
    rows = {}
    for path in manifest_lib.split_shards(converted_dir, split):
        for serialized in tf.data.TFRecordDataset(str(path)):
            if kind == "parsing":
                ex = schema.parse_parsing_example(serialized)
                row = {"mask": ex[schema.MASK_ENCODED].numpy()}
            else:
                ex = schema.parse_reid_example(serialized)
                row = {"person_id": int(ex[schema.PERSON_ID]), "camera_id": int(ex[schema.CAMERA_ID]),
                       "label": int(ex[schema.CLASS_LABEL])}
            row.update({"image": ex[schema.IMAGE_ENCODED].numpy(), "format": ex[schema.IMAGE_FORMAT].numpy().decode()})
            rows[ex[schema.IMAGE_FILENAME].numpy().decode()] = row
    return rows


def _tfds_rows(name: str, data_dir: Path, split: str, kind: str) -> dict[str, dict]:
    """filename -> what tfds.load gives for one split (images as the stored bytes)."""
    decoders = {"image": SKIP, "segmentation_mask": SKIP} if kind == "parsing" else {"image": SKIP}
    ds = tfds.load(name, data_dir=str(data_dir), split=split, download=False, decoders=decoders)
    rows = {}
    for ex in tfds.as_numpy(ds):
        if kind == "parsing":
            row = {"mask": ex["segmentation_mask"]}
        else:
            row = {"person_id": int(ex["person_id"]), "camera_id": int(ex["camera_id"]), "label": int(ex["label"])}
        row.update({"image": ex["image"], "format": ex["image/format"].decode()})
        filename = ex["image/filename"].decode()
        assert filename not in rows, f"{name}/{split}: {filename} twice"
        rows[filename] = row
    return rows


@pytest.mark.parametrize("dataset", sorted(registry.DATASETS))
def test_builder_gives_what_the_converter_gives(dataset, tfds_dir, converted_root, synthetic_stats):
    info = registry.DATASETS[dataset]
    name = spreid_tfds.builder_name(dataset)
    manifest = manifest_lib.load_manifest(converted_root / dataset)
    builder = tfds.builder(name, data_dir=str(tfds_dir))
    assert sorted(builder.info.splits) == sorted(manifest.splits)
    for split in manifest.splits:
        converted = _converter_rows(converted_root / dataset, split, info.kind)
        built = _tfds_rows(name, tfds_dir, split, info.kind)
        if info.kind == "reid":
            triples = {(f, r["person_id"], r["camera_id"]) for f, r in built.items()}
            assert triples == {(f, r["person_id"], r["camera_id"]) for f, r in converted.items()}, split
        assert built.keys() == converted.keys(), split
        # The same bytes (the original file; BMP as the converter's PNG), hence the same images and labels.
        assert built == converted, split
    # Bad files skipped exactly as the converter skips them, with its reasons.
    skipped = {(s["relpath"], s["reason"], s["split"]) for s in builder.info.metadata["skipped"]}
    assert skipped == {(s["relpath"], s["reason"], s["split"]) for s in manifest.skipped}
    assert builder.info.metadata["skipped_by_reason"] == manifest.skipped_by_reason
    assert set(synthetic_stats[dataset].skipped) <= {s[0] for s in skipped}
    assert builder.info.metadata["protocol"] == manifest.protocol
    assert builder.info.metadata["reader_info"] == manifest.info
    if info.kind == "reid":
        assert builder.info.features["label"].names == [str(p) for p in manifest.splits["train"].label_to_person_id]


def test_a_corrupt_file_is_skipped_as_the_converter_skips_it(tfds_dir, converted_root, synthetic_stats):
    corrupt = [p for p, reason in synthetic_stats["market1501"].skipped.items() if reason == REASON_CORRUPT]
    assert corrupt == ["bounding_box_train/0010_c2s1_009998_01.jpg"]
    builder = tfds.builder("spreid_market1501", data_dir=str(tfds_dir))
    entry = next(s for s in builder.info.metadata["skipped"] if s["relpath"] == corrupt[0])
    manifest = manifest_lib.load_manifest(converted_root / "market1501")
    assert entry == next(s for s in manifest.skipped if s["relpath"] == corrupt[0])
    assert entry["reason"].startswith(REASON_CORRUPT) and entry["split"] == "train"
    assert corrupt[0] not in _tfds_rows("spreid_market1501", tfds_dir, "train", "reid")


def test_decoded_images_and_protocol_features(tfds_dir):
    ds = tfds.load("spreid_market1501", data_dir=str(tfds_dir), split="gallery", download=False)
    raw = _tfds_rows("spreid_market1501", tfds_dir, "gallery", "reid")
    distractors = 0
    for ex in tfds.as_numpy(ds):
        filename = ex["image/filename"].decode()
        expected = tf.io.decode_image(raw[filename]["image"], channels=3).numpy()
        np.testing.assert_array_equal(ex["image"], expected)
        assert ex["image"].shape == (ex["image/height"], ex["image/width"], 3)
        assert ex["label"] == -1
        assert ex["is_distractor"] == (ex["person_id"] == 0)
        distractors += int(ex["is_distractor"])
    assert distractors == 3
    builder = tfds.builder("spreid_market1501", data_dir=str(tfds_dir))
    assert builder.info.metadata["reader_info"]["num_junk_ignored"]["gallery"] == 2
    train = tfds.load("spreid_market1501", data_dir=str(tfds_dir), split="train", download=False, as_supervised=True)
    labels = sorted({int(label) for _, label in tfds.as_numpy(train)})
    assert labels == list(range(builder.info.features["label"].num_classes)) == list(range(8))


def test_lip_masks_are_the_annotation_pngs(tfds_dir, synthetic_stats):
    ds = tfds.load("spreid_lip", data_dir=str(tfds_dir), split="val", download=False)
    root = Path(synthetic_stats["lip"].root)
    count = 0
    for ex in tfds.as_numpy(ds):
        mask_file = next(root.rglob(Path(ex["segmentation_mask/filename"].decode()).name))
        expected = tf.io.decode_png(mask_file.read_bytes(), channels=1).numpy()
        np.testing.assert_array_equal(ex["segmentation_mask"], expected)
        assert ex["segmentation_mask"].shape[:2] == ex["image"].shape[:2]
        count += 1
    assert count > 0


def test_builders_are_registered_with_their_facts():
    for dataset, info in registry.DATASETS.items():
        cls = tfds.builder_cls(f"spreid_{dataset}")
        assert cls is spreid_tfds.BUILDERS[dataset] and cls.name == f"spreid_{dataset}"
        assert cls.DATASET is info and str(cls.VERSION) == spreid_tfds.VERSION
        assert cls.MANUAL_DOWNLOAD_INSTRUCTIONS.count(info.url) == 1
        assert info.expected_tree.splitlines()[1].strip() in cls.MANUAL_DOWNLOAD_INSTRUCTIONS
        builder = tfds.builder(f"spreid_{dataset}", data_dir="/nonexistent/never/written")
        assert builder.info.citation == info.citation.strip() and info.citation.startswith("@inproceedings")
        assert builder.info.homepage == info.url
    configs = [c.name for c in spreid_tfds.BUILDERS["cuhk03"].BUILDER_CONFIGS]
    assert configs[0] == "labeled_classic0"
    assert set(configs) == {f"{t}_{p}" for t in ("labeled", "detected")
                            for p in [f"classic{k}" for k in range(20)] + ["767_700"]}
    config = tfds.builder("spreid_cuhk03/detected_767_700", data_dir="/nonexistent").builder_config
    assert config.reader_options == {"protocol": "767/700", "image_type": "detected"}
    assert [c.name for c in spreid_tfds.BUILDERS["viper"].BUILDER_CONFIGS][-1] == "all"


def test_cuhk03_configs_pass_the_protocol(synthetic_stats, tmp_path):
    root = synthetic_stats["cuhk03"].root
    builder = tfds.builder("spreid_cuhk03/labeled_767_700", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=_download_config(root))
    convert_dataset("cuhk03", root, tmp_path / "converted", num_shards=1, protocol="767/700")
    manifest = manifest_lib.load_manifest(tmp_path / "converted" / "cuhk03")
    assert builder.info.metadata["protocol"] == manifest.protocol == "market1501"
    for split in ("train", "query", "gallery"):
        built = _tfds_rows("spreid_cuhk03/labeled_767_700", tmp_path / "tfds", split, "reid")
        assert built == _converter_rows(tmp_path / "converted" / "cuhk03", split, "reid"), split


def test_empty_splits_are_left_out_and_named(synthetic_stats, tmp_path):
    root = synthetic_stats["viper"].root
    builder = tfds.builder("spreid_viper/all", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=_download_config(root))
    convert_dataset("viper", root, tmp_path / "converted", num_shards=1, split="all")
    manifest = manifest_lib.load_manifest(tmp_path / "converted" / "viper")
    assert (manifest.splits["query"].num_images, manifest.splits["gallery"].num_images) == (0, 0)
    assert sorted(builder.info.splits) == ["train"]
    assert builder.info.metadata["empty_splits"] == ["gallery", "query"]
    assert _tfds_rows("spreid_viper/all", tmp_path / "tfds", "train", "reid") == \
        _converter_rows(tmp_path / "converted" / "viper", "train", "reid")


# ------------------------------------------------------------------------- tfds: sources


def _eval_by_filename(ds: tf.data.Dataset) -> dict[str, dict]:
    rows = {}
    for batch in ds:
        for i, filename in enumerate(batch["filename"].numpy()):
            rows[filename.decode()] = {k: v[i].numpy() for k, v in batch.items() if k != "filename"}
    return rows


def test_eval_pipeline_reads_a_tfds_split_as_the_tfrecords(tfds_dir, converted_root):
    shards = [str(p) for p in manifest_lib.split_shards(converted_root / "market1501", "query")]
    source = f"tfds:spreid_market1501,data_dir={tfds_dir},split=query"
    from_records = _eval_by_filename(pipelines.eval_dataset(shards, batch_size=4, image_size=(64, 32)))
    from_tfds = _eval_by_filename(pipelines.eval_dataset(source, batch_size=4, image_size=(64, 32)))
    assert from_records.keys() == from_tfds.keys() and len(from_tfds) == 5
    for filename, row in from_records.items():
        assert row.keys() == from_tfds[filename].keys()
        for key, value in row.items():
            np.testing.assert_array_equal(from_tfds[filename][key], value, err_msg=f"{filename} {key}")
    with pytest.raises(ValueError, match="name the split"):
        pipelines.eval_dataset(f"tfds:spreid_market1501,data_dir={tfds_dir}", batch_size=1, image_size=(8, 8))


def _digests(ds: tf.data.Dataset) -> list[tuple[str, str]]:
    """Sorted (image, label or mask) digests of every element: the same multiset whatever the order."""

    def digest(tensor: tf.Tensor) -> str:
        return hashlib.sha256(tensor.numpy().tobytes()).hexdigest()

    return sorted((digest(x), digest(y)) for x, y in ds.unbatch())


def test_train_pipelines_read_a_tfds_split_as_the_tfrecords(tfds_dir, converted_root):
    shards = [str(p) for p in manifest_lib.split_shards(converted_root / "market1501", "train")]
    options = {"batch_size": 1, "image_size": (64, 32), "flip": False, "repeat": False, "seed": 3}
    from_records = _digests(pipelines.train_dataset(shards, **options))
    from_tfds = _digests(pipelines.train_dataset(f"tfds:spreid_market1501,data_dir={tfds_dir}", **options))
    assert len(from_records) == 32 and from_tfds == from_records
    lip_shards = [str(p) for p in manifest_lib.split_shards(converted_root / "lip", "val")]
    parsing = {"batch_size": 2, "crop_size": (64, 48), "training": False}
    from_records = _digests(pipelines.parsing_dataset(lip_shards, **parsing))
    assert from_records == _digests(pipelines.parsing_dataset(f"tfds:spreid_lip,data_dir={tfds_dir}", **parsing))
    train = pipelines.parsing_dataset(f"tfds:spreid_lip,data_dir={tfds_dir}", batch_size=2, crop_size=(32, 32),
                                      seed=0, repeat=False)
    images, masks = next(iter(train))
    assert images.shape == (2, 32, 32, 3) and masks.shape == (2, 32, 32, 1)


def test_training_inputs_read_a_tfds_source(tfds_dir, converted_root):
    text = f"tfds:spreid_market1501,data_dir={tfds_dir}"
    data = inputs.resolve_reid_data(text, what="--train_data")
    converted = inputs.resolve_reid_data(converted_root / "market1501")
    assert (data.num_identities, data.num_images, data.name) == (converted.num_identities, converted.num_images,
                                                                  "market1501")
    assert data.train_files == (f"{text},split=train",) and data.eval_dir is None
    parsing = inputs.resolve_parsing_data(f"tfds:spreid_lip,data_dir={tfds_dir}")
    assert parsing.num_images == inputs.resolve_parsing_data(converted_root / "lip").num_images
    assert parsing.val_files == (f"tfds:spreid_lip,data_dir={tfds_dir},split=val",)
    with pytest.raises(ValueError, match="not a re-id dataset"):
        inputs.resolve_reid_data(f"tfds:spreid_lip,data_dir={tfds_dir}", what="--train_data")


def test_bad_tfds_sources_fail_in_one_line(tfds_dir, tmp_path):
    assert tfds_source.parse_tfds_source("tfds:spreid_cuhk03/labeled_classic0:1.0.0,data_dir=/d,split=query") == \
        tfds_source.TfdsSource("spreid_cuhk03/labeled_classic0:1.0.0", data_dir="/d", split="query")
    for text, match in [("tfds:spreid_market1501,dir=/x", "data_dir=DIR, split=SPLIT"),
                        ("tfds:Market 1501", "not a TFDS dataset name"),
                        ("tfds:spreid_market1501,split=a,split=b", "split given twice")]:
        with pytest.raises(ValueError, match=match):
            tfds_source.parse_tfds_source(text, "--train_data")
    with pytest.raises(KeyError, match="spreid_market1501"):
        inputs.resolve_reid_data(f"tfds:mnist,data_dir={tfds_dir}", what="--train_data")
    with pytest.raises(FileNotFoundError, match="not built in .*manual_dir"):
        inputs.resolve_reid_data(f"tfds:spreid_viper,data_dir={tmp_path}", what="--train_data")
    with pytest.raises(ValueError, match="read alone"):
        pipelines.eval_dataset(["tfds:spreid_viper,split=query", "x.tfrecord"], batch_size=1, image_size=(8, 8))


def test_without_tensorflow_datasets_a_tfds_source_names_the_extra(monkeypatch):
    import spreid_tf.data

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # `import tensorflow_datasets` fails
    monkeypatch.delitem(sys.modules, "spreid_tf.data.tfds")
    monkeypatch.delattr(spreid_tf.data, "tfds")
    with pytest.raises(ValueError) as error:
        pipelines.train_dataset("tfds:spreid_market1501", batch_size=1, image_size=(8, 8))
    assert str(error.value) == ('tfds:spreid_market1501,split=train needs TensorFlow Datasets, which is not '
                                'installed: pip install -e ".[tfds]" (the optional extra tfds)')


def test_only_spreid_tf_data_tfds_imports_tensorflow_datasets():
    """The base install needs no tensorflow-datasets: one module imports it, and no module imports that
    one at module level (the `tfds:` readers import it inside functions)."""
    package = Path(spreid_tfds.__file__).resolve().parents[1]
    importers, module_level = [], []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            rel = path.relative_to(package.parent).as_posix()
            if any(n.split(".")[0] == "tensorflow_datasets" for n in names):
                importers.append(rel)
            if any(n == "spreid_tf.data.tfds" for n in names) and id(node) in top:
                module_level.append(rel)
    assert sorted(set(importers)) == ["spreid_tf/data/tfds.py"]
    assert module_level == []


@pytest.mark.slow
def test_beam_build_equals_the_plain_build(tfds_dir, synthetic_stats, tmp_path):
    pytest.importorskip("apache_beam")
    builder = tfds.builder("spreid_market1501", data_dir=str(tmp_path))
    # FnApiRunner runs in-process; the DirectRunner first starts a Prism job server (and leaves its
    # temporary folder behind).
    builder.download_and_prepare(download_config=_download_config(synthetic_stats["market1501"].root,
                                                                  beam_runner="FnApiRunner"))
    assert builder._use_beam
    for split in ("train", "query", "gallery"):
        assert _tfds_rows("spreid_market1501", tmp_path, split, "reid") == \
            _tfds_rows("spreid_market1501", tfds_dir, split, "reid"), split
