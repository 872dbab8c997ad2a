"""CUHK03: reader of the v7.3 cuhk-03.mat and the new-protocol configs, miniature, conversion."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

import miniature_checks as checks
from spreid_tf.data import manifest
from spreid_tf.data.readers import cuhk03
from spreid_tf.data.records import DatasetLayoutError
from spreid_tf.data.synthetic import cuhk03 as miniature

# Hand-checked counts of the miniature (see spreid_tf/data/synthetic/cuhk03.py):
# split -> (images, ids, cameras).
HAND_COUNTS = {
    ("classic", "labeled"): {"train": (43, 10, 2), "query": (400, 100, 2), "gallery": (400, 100, 2)},
    ("classic", "detected"): {"train": (42, 10, 2), "query": (400, 100, 2), "gallery": (400, 100, 2)},
    ("767/700", "labeled"): {"train": (231, 57, 2), "query": (106, 53, 2), "gallery": (106, 53, 2)},
    ("767/700", "detected"): {"train": (230, 57, 2), "query": (106, 53, 2), "gallery": (106, 53, 2)},
    # Both types, as the merged training set converts CUHK03 (registry merge_options).
    ("classic", "both"): {"train": (85, 10, 2), "query": (800, 100, 2), "gallery": (800, 100, 2)},
}


@pytest.fixture(scope="module")
def root(synthetic_stats) -> Path:
    return Path(synthetic_stats["cuhk03"].root)


def test_default_conversion_matches_miniature(converted_root, synthetic_stats):
    m = manifest.load_manifest(converted_root / "cuhk03")
    assert synthetic_stats["cuhk03"].mismatches(m) == []
    assert checks.counts(m) == HAND_COUNTS[("classic", "labeled")]
    assert m.reader_options == {}
    assert m.info["protocol"] == "classic" and m.info["image_type"] == "labeled"
    assert m.info["num_empty_cells"] == 656
    assert m.skipped_by_reason == {"corrupt image": 1}
    checks.check_shards(converted_root / "cuhk03", "cuhk03")


@pytest.mark.parametrize("protocol,image_type", [("classic", "detected"), ("767/700", "labeled"),
                                                 ("767/700", "detected"), ("classic", "both")])
def test_other_protocols_and_image_types(root, tmp_path, protocol, image_type):
    m = checks.convert("cuhk03", root, tmp_path, protocol=protocol, image_type=image_type)
    assert miniature.expected(0, protocol, image_type).mismatches(m) == []
    assert checks.counts(m) == HAND_COUNTS[(protocol, image_type)]
    if protocol == "767/700":
        assert (m.info["num_train_ids"], m.info["num_test_ids"]) == (57, 53)  # 767/700 in the full data
        assert m.info["config_file"] == f"cuhk03_new_protocol_config_{image_type}.mat"
    rows = {s: checks.examples(tmp_path / "cuhk03", s) for s in ("train", "query", "gallery")}
    assert not {r["pid"] for r in rows["train"]} & {r["pid"] for r in rows["query"] + rows["gallery"]}
    prefixes = {r["filename"].split("/")[0] for s in rows.values() for r in s}
    assert prefixes == ({"images_labeled", "images_detected"} if image_type == "both" else {f"images_{image_type}"})


def test_classic_splits_have_100_test_ids_each(root):
    result = checks.read("cuhk03", root)
    splits = result.info["classic_test_ids"]
    assert len(splits) == 20 and result.info["num_classic_splits"] == 20
    assert all(len(ids) == len(set(ids)) == 100 for ids in splits)
    assert len({tuple(ids) for ids in splits}) == 20  # 20 different draws
    # The ids are the testsets' [pair, person] rows, read here as torchreid reads them.
    offsets = np.concatenate([[0], np.cumsum(miniature.PERSONS_PER_PAIR)])
    with h5py.File(Path(root) / "cuhk03" / "cuhk03_release" / "cuhk-03.mat", "r") as f:
        for k, ref in enumerate(f["testsets"][0]):
            rows = f[ref][:].T.astype(int)
            assert rows.shape == (100, 2)
            assert sorted(int(offsets[p - 1] + i) for p, i in rows) == splits[k]
    for index in (0, 7, 19):
        split = checks.read("cuhk03", root, split_index=index)
        test_ids = {r.person_id for r in split.splits["query"]}
        assert test_ids == set(splits[index]) == {r.person_id for r in split.splits["gallery"]}
        assert len({r.person_id for r in split.splits["train"]}) == 10
        assert not test_ids & {r.person_id for r in split.splits["train"]}


def test_new_protocol_query_is_one_image_per_view_per_test_id(root):
    result = checks.read("cuhk03", root, protocol="767/700")
    query = result.splits["query"]
    per_id_view = {(r.person_id, r.camera_id) for r in query}
    assert len(per_id_view) == len(query) == 2 * 53
    test_ids = {r.person_id for r in query}
    assert test_ids == {r.person_id for r in result.splits["gallery"]}
    assert not {r.relpath for r in query} & {r.relpath for r in result.splits["gallery"]}
    # Person ids are the configs' labels (1..110 in pair order), identical for both types.
    detected = checks.read("cuhk03", root, protocol="767/700", image_type="detected")
    assert {r.person_id for r in detected.splits["train"]} == {r.person_id for r in result.splits["train"]}


def test_empty_cells_are_skipped_and_images_decode_to_the_mat_arrays(root):
    result = checks.read("cuhk03", root)
    records = {r.relpath: r for split in ("train", "query") for r in result.splits[split]}
    mat_path = Path(root) / "cuhk03" / "cuhk03_release" / "cuhk-03.mat"
    non_empty = set()
    with h5py.File(mat_path, "r") as f:  # torchreid's reading: deref, transpose, skip empty
        for pair, pair_ref in enumerate(f["labeled"][0]):
            cells = f[pair_ref][:].T
            for person in range(cells.shape[0]):
                for cell in range(cells.shape[1]):
                    image = f[cells[person, cell]][:].T
                    if image.size == 0 or image.ndim < 3:
                        continue
                    name = f"images_labeled/{cuhk03.image_name(pair, person, cell)}"
                    non_empty.add(name)
                    if name in ("images_labeled/1_001_1_01.png", "images_labeled/3_020_2_07.png"):
                        decoded = cv2.imdecode(np.frombuffer(records[name].image_bytes, np.uint8),
                                               cv2.IMREAD_COLOR)[..., ::-1]
                        np.testing.assert_array_equal(decoded, image)
                        assert image.shape[0] > image.shape[1]  # HxWx3 people, not transposed
    assert set(records) == non_empty  # the 2-D corrupt cell is not HxWx3 either
    assert len(records) == 443 and result.info["num_empty_cells"] == 1100 - 444
    assert {r.camera_id for r in records.values()} == {0, 1}
    assert records["images_labeled/1_001_2_10.png"].camera_id == 1
    assert records["images_labeled/2_005_1_02.png"].person_id == 45  # pair 2 starts after 40 persons


def test_mat_files_are_real_matlab_files(root):
    data = Path(root) / "cuhk03"
    mat = data / "cuhk03_release" / "cuhk-03.mat"
    assert mat.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    assert scipy.io.matlab.matfile_version(str(mat)) == (2, 0)
    with h5py.File(mat, "r") as f:
        assert f["labeled"].attrs["MATLAB_class"] == b"cell" and f["labeled"].shape == (1, 5)
        assert f["testsets"].shape == (1, 20)
        empty = [d for d in f["#refs#"].values() if d.attrs.get("MATLAB_empty")]
        assert empty and all(d[()].tolist() == [0, 0] for d in empty[:5])
    for image_type in ("labeled", "detected"):
        config_path = data / f"cuhk03_new_protocol_config_{image_type}.mat"
        assert scipy.io.matlab.matfile_version(str(config_path)) == (1, 0)
        config = scipy.io.loadmat(str(config_path))
        filelist = config["filelist"].flatten()
        assert filelist[0][0] == "1_001_1_01.png"  # torchreid: filelist[idx][0]
        n = len(filelist)
        indices = np.concatenate([config[k].ravel() for k in ("train_idx", "query_idx", "gallery_idx")])
        assert sorted(indices.astype(int)) == list(range(1, n + 1))
        assert config["labels"].shape == (n, 1) and set(config["camId"].ravel()) == {1, 2}


def test_missing_files_fail_at_once(root, tmp_path):
    with pytest.raises(DatasetLayoutError) as error:
        checks.read("cuhk03", tmp_path / "absent")
    assert str(tmp_path / "absent") in str(error.value) and "cuhk-03.mat" in str(error.value)
    copy = tmp_path / "cuhk03"
    shutil.copytree(Path(root) / "cuhk03", copy)
    (copy / "cuhk03_new_protocol_config_detected.mat").unlink()
    checks.read("cuhk03", copy, image_type="detected")  # classic needs no config
    with pytest.raises(DatasetLayoutError) as error:
        checks.read("cuhk03", copy, protocol="767/700", image_type="detected")
    assert str(copy / "cuhk03_new_protocol_config_detected.mat") in str(error.value)
    (copy / "cuhk03_release" / "cuhk-03.mat").unlink()
    with pytest.raises(DatasetLayoutError) as error:
        checks.read("cuhk03", copy)
    assert str(copy / "cuhk03_release" / "cuhk-03.mat") in str(error.value)
    assert "cuhk03_new_protocol_config_labeled.mat" in str(error.value)  # the tree is drawn


@pytest.mark.parametrize("options", [{"protocol": "new"}, {"image_type": "all"}, {"split_index": 20},
                                     {"protocol": "767/700", "split_index": 1}])
def test_bad_options_are_refused(root, options):
    with pytest.raises(ValueError):
        checks.read("cuhk03", root, **options)
