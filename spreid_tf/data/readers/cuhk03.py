"""CUHK03 (Li et al., "DeepReID: Deep Filter Pairing Neural Network for Person
Re-identification", CVPR 2014), with the classic 1367/100 protocol and the new 767/700
protocol of Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017.

URL: http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html (`cuhk03_release.zip`,
by request); new protocol files: https://github.com/zhunzhong07/person-re-ranking/tree/master/evaluation/data/CUHK03

Raw layout (`root` is `cuhk03/` or the folder that holds it, as torchreid's):

    cuhk03/
      cuhk03_release/
        cuhk-03.mat                                  MATLAB v7.3 (HDF5)
      cuhk03_new_protocol_config_labeled.mat         MATLAB v5 (only for "767/700")
      cuhk03_new_protocol_config_detected.mat        MATLAB v5 (only for "767/700")

`cuhk-03.mat` holds (MATLAB shapes; h5py sees them transposed):
    labeled, detected   5x1 cells, one per camera pair; each a (persons x 10) cell of
                        HxWx3 uint8 images: columns 1-5 from the pair's first camera,
                        6-10 from the second; missing images are empty `[]` cells.
                        Persons per pair: 843, 440, 77, 58, 49 (1,467 in all).
    testsets            20x1 cell of 100x2 double [camera pair, person] (1-based):
                        the test ids of the 20 classic splits.
Each new-protocol config holds `filelist` (cell of names such as `1_001_1_01.png`),
`labels` (person ids 1..1467), `camId`, and `train_idx`, `query_idx`, `gallery_idx`
(1-based indices into `filelist`).

Images only exist as arrays: each is encoded once as PNG (Record.image_bytes) and
named as torchreid extracts it, `images_<type>/<pair>_<person:03d>_<view>_<cell:02d>.png`
(`image/filename`; the file does not exist on disk). Empty cells are not images and
are only counted (`info.num_empty_cells`); an element that is not an HxWx3 uint8
array is skipped as corrupt. Person ids are 1..1467 in camera-pair order (the
offset of the pair plus the person's row), the new protocol's `labels`; the camera
id is the view within the pair (0: columns 1-5, 1: columns 6-10), as torchreid
and the new protocol's `camId` count them.

Options (reader keyword arguments, recorded in the manifest):
    protocol     "classic" (default; the protocol of the paper's CUHK03 results):
                 split `split_index` (0-19) of `testsets`: 100 test ids, the other
                 1,367 train; query and gallery both hold every image of the 100 test
                 ids, as torchreid's: the evaluation's same-id-same-camera rule makes
                 each query match the other view.
                 "767/700": train 767 ids; query one image per camera per test id
                 (1,400), gallery the rest of the 700 test ids.
    image_type   "labeled" (default; hand-cropped), "detected" (DPM boxes), or "both"
                 (each split holds the labeled and the detected images: the merged
                 training set uses the classic split 0's train ids this way, as
                 Xiao et al.'s DGD merged set does).
    split_index  classic split, 0-19.

Statistics: 1,467 ids, 14,096 labeled and 14,097 detected images, 2 views per pair
(6 cameras over 5 pairs). 767/700 labeled: train 7,368 images / 767 ids, query 1,400 /
700, gallery 5,328 / 700; detected: 7,365, 1,400, 5,332.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import scipy.io

from spreid_tf.data.dataset_info import CUHK03_CLASSIC_PROTOCOL, MARKET1501_PROTOCOL, DatasetInfo
from spreid_tf.data.records import (REASON_CORRUPT, REASON_MISSING, ReadResult, Record, Skipped, require_file,
                                    resolve_root)

logger = logging.getLogger(__name__)

NAME = "cuhk03"
DIRNAMES = ("cuhk03", "CUHK03")
MAT_RELPATH = "cuhk03_release/cuhk-03.mat"
CONFIG_NAME = "cuhk03_new_protocol_config_{image_type}.mat"
PROTOCOLS = ("classic", "767/700")
IMAGE_TYPES = ("labeled", "detected", "both")
NUM_CLASSIC_SPLITS = 20
CELLS_PER_VIEW = 5
FILENAME = re.compile(r"(?P<pair>\d)_(?P<person>\d{3})_(?P<view>[12])_(?P<cell>\d{2})\.png")

EXPECTED_TREE = """\
<root>/                                        (or <root>/cuhk03/)
  cuhk03_release/
    cuhk-03.mat                                MATLAB v7.3: labeled, detected, testsets
  cuhk03_new_protocol_config_labeled.mat       (protocol "767/700" only)
  cuhk03_new_protocol_config_detected.mat      (protocol "767/700" only)
"""


def image_name(pair: int, person: int, cell: int) -> str:
    """torchreid's name of cell `cell` (0-9) of person `person` (0-based) in pair `pair` (0-based)."""
    view = 1 if cell < CELLS_PER_VIEW else 2
    return f"{pair + 1}_{person + 1:03d}_{view}_{cell + 1:02d}.png"


def _cell(f: h5py.File, dataset: h5py.Dataset) -> np.ndarray:
    """A MATLAB cell dataset as an object array of references in MATLAB's shape."""
    if dataset.attrs.get("MATLAB_class", b"cell") not in (b"cell", "cell"):
        raise ValueError(f"{f.filename}: {dataset.name} is not a MATLAB cell")
    return dataset[()].T


def _is_empty(dataset: h5py.Dataset) -> bool:
    return bool(dataset.attrs.get("MATLAB_empty", 0)) or dataset.size == 0


def _encode_png(rgb: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError(f"cannot encode a {rgb.shape} image as PNG")
    return buffer.tobytes()


def _open_mat(path: Path) -> h5py.File:
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: not a MATLAB v7.3 (HDF5) file as CUHK03 ships it ({e})") from None
    missing = [k for k in ("labeled", "detected", "testsets") if k not in f]
    if missing:
        f.close()
        raise ValueError(f"{path}: lacks variables {missing} (expected labeled, detected, testsets)")
    return f


def _extract(f: h5py.File, image_type: str, keep: set[str] | None):
    """Reads every cell of `image_type`.

    Returns:
        (images: name -> (png bytes, person id, view), skipped, persons_per_pair,
        num_empty). Only names in `keep` are encoded (all when None).
    """
    images: dict[str, tuple[bytes | None, int, int]] = {}
    skipped: list[Skipped] = []
    persons_per_pair: list[int] = []
    num_empty = 0
    offset = 0
    for pair, pair_ref in enumerate(_cell(f, f[image_type]).ravel(order="F")):
        persons = _cell(f, f[pair_ref])  # (num_persons, 10)
        persons_per_pair.append(persons.shape[0])
        for person in range(persons.shape[0]):
            person_id = offset + person + 1
            for cell in range(persons.shape[1]):
                dataset = f[persons[person, cell]]
                if _is_empty(dataset):
                    num_empty += 1
                    continue
                name = image_name(pair, person, cell)
                array = dataset[()].T
                if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
                    skipped.append(Skipped(f"images_{image_type}/{name}",
                                           f"{REASON_CORRUPT}: {image_type} cell of pair {pair + 1}, person "
                                           f"{person + 1}, image {cell + 1} is a {array.dtype} array of "
                                           f"shape {array.shape}, not HxWx3 uint8"))
                    continue
                data = _encode_png(array) if keep is None or name in keep else None
                images[name] = (data, person_id, 0 if cell < CELLS_PER_VIEW else 1)
        offset += persons.shape[0]
        logger.info("%s: read %s camera pair %d (%d persons, %d images so far)", NAME, image_type, pair + 1,
                    persons.shape[0], len(images))
    return images, skipped, persons_per_pair, num_empty


def _classic_test_ids(f: h5py.File, persons_per_pair: list[int]) -> list[list[int]]:
    """The 20 classic splits' test ids, as global person ids (1-based)."""
    offsets = np.concatenate([[0], np.cumsum(persons_per_pair)])
    splits = []
    for ref in _cell(f, f["testsets"]).ravel(order="F"):
        pairs = np.asarray(f[ref][()].T, dtype=np.float64).reshape(-1, 2).astype(np.int64)
        splits.append(sorted(int(offsets[p - 1] + i) for p, i in pairs))
    return splits


def _load_config(path: Path) -> dict[str, np.ndarray]:
    try:
        config = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises several types for a bad file
        raise ValueError(f"{path}: cannot read the new-protocol config ({type(e).__name__}: {e})") from None
    keys = ("filelist", "labels", "train_idx", "query_idx", "gallery_idx")
    missing = [k for k in keys if k not in config]
    if missing:
        raise ValueError(f"{path}: lacks variables {missing} (expected {list(keys)})")
    return config


def _config_names(config: dict) -> list[str]:
    return [str(np.asarray(entry).ravel()[0]) for entry in config["filelist"].ravel()]


def read(root: Path, protocol: str = "classic", image_type: str = "labeled", split_index: int = 0) -> ReadResult:
    """Reads CUHK03 (see the module docstring for the layout and the options)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"{NAME}: protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if image_type not in IMAGE_TYPES:
        raise ValueError(f"{NAME}: image_type must be one of {IMAGE_TYPES}, got {image_type!r}")
    if protocol == "classic" and not 0 <= split_index < NUM_CLASSIC_SPLITS:
        raise ValueError(f"{NAME}: split_index must be in [0, {NUM_CLASSIC_SPLITS}), got {split_index}")
    if protocol == "767/700" and split_index != 0:
        raise ValueError(f"{NAME}: the 767/700 protocol has one split; split_index must be 0")
    if image_type == "both":
        return _combine([read(root, protocol, t, split_index) for t in ("labeled", "detected")])
    data_dir = resolve_root(root, DIRNAMES, "cuhk03_release", EXPECTED_TREE)
    mat_path = require_file(data_dir / MAT_RELPATH, EXPECTED_TREE)
    config = None
    config_path = data_dir / CONFIG_NAME.format(image_type=image_type)
    if protocol == "767/700":
        config = _load_config(require_file(config_path, EXPECTED_TREE))

    with _open_mat(mat_path) as f:
        keep = set(_config_names(config)) if config is not None else None
        images, skipped, persons_per_pair, num_empty = _extract(f, image_type, keep)
        classic = _classic_test_ids(f, persons_per_pair)

    def record(name: str, person_id: int | None = None) -> Record:
        data, pid, view = images[name]
        return Record(relpath=f"images_{image_type}/{name}", person_id=pid if person_id is None else person_id,
                      camera_id=view, dataset=NAME, image_bytes=data)

    info: dict = {
        "protocol": protocol,
        "image_type": image_type,
        "split_index": split_index,
        "persons_per_pair": persons_per_pair,
        "num_persons": int(sum(persons_per_pair)),
        "num_empty_cells": num_empty,
        "camera_id": "view within the camera pair: 0 = columns 1-5, 1 = columns 6-10",
        "num_classic_splits": len(classic),
        "classic_test_ids": classic,
    }
    if protocol == "classic":
        if split_index >= len(classic):
            raise ValueError(f"{mat_path}: testsets has {len(classic)} splits, split_index={split_index}")
        test_ids = set(classic[split_index])
        train = [record(n) for n in sorted(images) if images[n][1] not in test_ids]
        test = [record(n) for n in sorted(images) if images[n][1] in test_ids]
        info["num_test_ids"] = len(test_ids)
        return ReadResult(splits={"train": train, "query": test, "gallery": list(test)}, skipped=skipped,
                          info=info)

    names = _config_names(config)
    labels = np.asarray(config["labels"]).ravel().astype(np.int64)
    bad_names = sorted({n for n in names if FILENAME.fullmatch(n) is None})
    if bad_names:
        raise ValueError(f"{config_path}: filelist names {bad_names[:3]} do not look like 1_001_1_01.png")
    splits: dict[str, list[Record]] = {}
    indices = {}
    for split in ("train", "query", "gallery"):
        indices[split] = np.asarray(config[f"{split}_idx"]).ravel().astype(np.int64) - 1
        if indices[split].size and (indices[split].min() < 0 or indices[split].max() >= len(names)):
            raise ValueError(f"{config_path}: {split}_idx outside 1..{len(names)}")
        records = []
        for i in indices[split]:
            if names[i] in images:
                records.append(record(names[i], int(labels[i])))
            elif not any(s.relpath == f"images_{image_type}/{names[i]}" for s in skipped):
                skipped.append(Skipped(f"images_{image_type}/{names[i]}",
                                       f"{REASON_MISSING}: listed in {config_path.name} ({split}) but "
                                       f"empty or absent in {MAT_RELPATH}"))
        splits[split] = records
    info["config_file"] = config_path.name
    info["num_train_ids"] = len(set(labels[indices["train"]].tolist()))
    info["num_test_ids"] = len(set(labels[np.concatenate([indices["query"], indices["gallery"]])].tolist()))
    return ReadResult(splits=splits, skipped=skipped, info=info)


def _combine(parts: list[ReadResult]) -> ReadResult:
    """image_type="both": the labeled and the detected results, split by split."""
    labeled, detected = parts
    info = dict(labeled.info)
    info["image_type"] = "both"
    info["num_empty_cells"] = labeled.info["num_empty_cells"] + detected.info["num_empty_cells"]
    info["num_empty_cells_by_type"] = {"labeled": labeled.info["num_empty_cells"],
                                       "detected": detected.info["num_empty_cells"]}
    if "config_file" in info:
        info["config_file"] = [labeled.info["config_file"], detected.info["config_file"]]
    splits = {split: labeled.splits[split] + detected.splits[split] for split in labeled.splits}
    return ReadResult(splits=splits, skipped=labeled.skipped + detected.skipped, info=info)


def evaluation_protocol(reader_info: dict) -> str:
    """The classic split is scored single shot; the 767/700 split by the Market-1501 rule."""
    return CUHK03_CLASSIC_PROTOCOL if reader_info.get("protocol") == "classic" else MARKET1501_PROTOCOL


CITATION = """\
@inproceedings{li2014deepreid,
  title     = {DeepReID: Deep Filter Pairing Neural Network for Person Re-identification},
  author    = {Li, Wei and Zhao, Rui and Xiao, Tong and Wang, Xiaogang},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2014}
}
@inproceedings{zhong2017reranking,
  title     = {Re-ranking Person Re-identification with k-reciprocal Encoding},
  author    = {Zhong, Zhun and Zheng, Liang and Cao, Donglin and Li, Shaozi},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2017}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html",
    reference="Li et al., DeepReID: Deep Filter Pairing Neural Network for Person Re-identification, CVPR 2014; "
              "new protocol: Zhong et al., Re-ranking Person Re-identification with k-reciprocal Encoding, "
              "CVPR 2017",
    citation=CITATION,
    merge_options={"image_type": "both"},
    protocol=evaluation_protocol,
)
