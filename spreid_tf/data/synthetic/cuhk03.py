"""A miniature CUHK03: a real v7.3 `cuhk-03.mat` and real v5 new-protocol configs.

    cuhk03/
      cuhk03_release/cuhk-03.mat, README.md
      cuhk03_new_protocol_config_labeled.mat
      cuhk03_new_protocol_config_detected.mat

110 persons over the five camera pairs (40, 30, 20, 10, 10). Every person fills cells
1, 2 (first camera) and 6, 7 (second camera) of both image types, and leaves the other
cells empty (`[]`), except five persons that every protocol puts in training:

    person  labeled                               detected
    1       all 10 cells                          cells 1-4, 6-8 (7 images)
    2       cells 1, 2 only (one view)            ordinary
    3       cell 7 is a 2-D array (corrupt)       ordinary
    4       ordinary                              cell 7 is a float64 array (corrupt)
    5       ordinary                              ordinary

The 20 classic `testsets` each draw 100 test persons from persons 6-110 (all ordinary,
4 images each), so every classic split has 10 training ids. The new-protocol
configs (the same ids for both types, as the real ones) train on persons 1-5 and 52
of persons 6-110 (57 ids, 52% as 767 of 1,467) and test on the other 53; query is one
image per view of each test id, gallery the other one. The corrupt cells are listed
in `filelist` like any image. Counts (hand-checked in tests/data/test_cuhk03.py):

    classic, labeled:    train 43 images / 10 ids, query = gallery 400 / 100
    classic, detected:   train 42 / 10, query = gallery 400 / 100
    767/700, labeled:    train 231 / 57, query 106 / 53, gallery 106 / 53
    767/700, detected:   train 230 / 57, query 106 / 53, gallery 106 / 53
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from spreid_tf.data.readers.cuhk03 import FILENAME, NAME, image_name
from spreid_tf.data.records import REASON_CORRUPT
from spreid_tf.data.synthetic import matlab, people
from spreid_tf.data.synthetic.stats import ExpectedStats, split_stats

PERSONS_PER_PAIR = (40, 30, 20, 10, 10)
NUM_PERSONS = sum(PERSONS_PER_PAIR)
ORDINARY_CELLS = (0, 1, 5, 6)
TEST_POOL = tuple(range(6, NUM_PERSONS + 1))
NUM_CLASSIC_TEST = 100
NUM_NEW_TRAIN_FROM_POOL = 52
CORRUPT = {"labeled": (3, 6), "detected": (4, 6)}  # (person, cell)
NUM_SPLITS = 20


def _cells(image_type: str, person: int) -> tuple[int, ...]:
    if image_type == "labeled":
        return {1: tuple(range(10)), 2: (0, 1)}.get(person, ORDINARY_CELLS)
    return {1: (0, 1, 2, 3, 5, 6, 7)}.get(person, ORDINARY_CELLS)


def _pair_person(person: int) -> tuple[int, int]:
    """Global person id (1-based) -> (pair, row), both 0-based."""
    offset = 0
    for pair, n in enumerate(PERSONS_PER_PAIR):
        if person <= offset + n:
            return pair, person - offset - 1
        offset += n
    raise ValueError(person)


def _name(person: int, cell: int) -> str:
    pair, row = _pair_person(person)
    return image_name(pair, row, cell)


def _protocols(seed: int) -> tuple[list[list[int]], list[int], dict[str, dict[int, int]]]:
    """(classic test ids per split, new-protocol train ids, query cell per view per test id)."""
    rng = np.random.default_rng([zlib.crc32(NAME.encode()), seed])
    pool = np.array(TEST_POOL)
    classic = [sorted(rng.choice(pool, NUM_CLASSIC_TEST, replace=False).tolist()) for _ in range(NUM_SPLITS)]
    new_train = sorted([1, 2, 3, 4, 5] + rng.choice(pool, NUM_NEW_TRAIN_FROM_POOL, replace=False).tolist())
    query = {}
    for person in TEST_POOL:
        if person not in new_train:
            query[person] = (int(rng.choice([0, 1])), int(rng.choice([5, 6])))
    return classic, new_train, query


def _kept_images(seed: int, protocol: str, image_type: str, split_index: int) -> list[tuple[str, int, int]]:
    """(split, person, view) of every image of `image_type` the conversion must keep."""
    classic, new_train, query = _protocols(seed)
    items = []
    for person in range(1, NUM_PERSONS + 1):
        for cell in _cells(image_type, person):
            if (person, cell) == CORRUPT[image_type]:
                continue
            view = 0 if cell < 5 else 1
            if protocol == "classic":
                if person in classic[split_index]:
                    items += [("query", person, view), ("gallery", person, view)]
                else:
                    items.append(("train", person, view))
            elif person in new_train:
                items.append(("train", person, view))
            else:
                items.append(("query" if cell in query[person] else "gallery", person, view))
    return items


def expected(seed: int = 0, protocol: str = "classic", image_type: str = "labeled",
             split_index: int = 0) -> ExpectedStats:
    """What converting the miniature with these reader options must give."""
    types = ("labeled", "detected") if image_type == "both" else (image_type,)
    items = [item for t in types for item in _kept_images(seed, protocol, t, split_index)]
    num_cells = sum(len(_cells(t, p)) for t in types for p in range(1, NUM_PERSONS + 1))
    return ExpectedStats(
        splits=split_stats(items, ("train", "query", "gallery")),
        skipped={f"images_{t}/{_name(*CORRUPT[t])}": REASON_CORRUPT for t in types},
        info={"protocol": protocol, "image_type": image_type, "persons_per_pair": list(PERSONS_PER_PAIR),
              "num_persons": NUM_PERSONS, "num_empty_cells": len(types) * NUM_PERSONS * 10 - num_cells,
              "num_classic_splits": NUM_SPLITS, "classic_test_ids": _protocols(seed)[0]},
    )


def write(root: Path, seed: int = 0) -> ExpectedStats:
    """Writes the miniature under `root/cuhk03/`; returns the default options' ExpectedStats."""
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    data = Path(root) / "cuhk03"
    rng = np.random.default_rng(base)
    classic, new_train, query = _protocols(seed)

    variables = {}
    names: dict[str, list[str]] = {t: [] for t in ("labeled", "detected")}
    for image_type in ("labeled", "detected"):
        pairs = np.empty((len(PERSONS_PER_PAIR), 1), dtype=object)
        for pair, n in enumerate(PERSONS_PER_PAIR):
            pairs[pair, 0] = np.empty((n, 10), dtype=object)  # None = empty []
        variables[image_type] = pairs
    for person in range(1, NUM_PERSONS + 1):
        pair, row = _pair_person(person)
        height, width = int(rng.integers(40, 57)), int(rng.integers(16, 25))
        views = [people.render(base + person, seed * 31 + 2 * pair + view, person, height, width)[0]
                 for view in (0, 1)]
        for image_type in ("labeled", "detected"):
            for cell in _cells(image_type, person):
                image = views[0 if cell < 5 else 1]
                # Each cell is another frame: shift and relight the person a little.
                image = np.roll(image, cell % 5 - 2, axis=1)
                image = np.clip(image.astype(np.float32) * (0.9 + 0.05 * (cell % 5)), 0, 255).astype(np.uint8)
                if image_type == "detected":  # a looser DPM box: other rows and columns
                    image = np.pad(image[3:], ((0, 1), (1, 1), (0, 0)), mode="edge")
                if (person, cell) == CORRUPT[image_type]:
                    image = image[..., 0] if image_type == "labeled" else image.astype(np.float64)
                variables[image_type][pair, 0][row, cell] = image
                names[image_type].append(_name(person, cell))

    offsets = np.concatenate([[0], np.cumsum(PERSONS_PER_PAIR)])
    testsets = np.empty((NUM_SPLITS, 1), dtype=object)
    for k, ids in enumerate(classic):
        rows = []
        for person in ids:
            pair = int(np.searchsorted(offsets, person) - 1)
            rows.append([pair + 1, person - offsets[pair]])
        testsets[k, 0] = np.array(rows, dtype=np.float64)
    variables["testsets"] = testsets
    matlab.write_mat73(data / "cuhk03_release" / "cuhk-03.mat", variables)
    (data / "cuhk03_release" / "README.md").write_text(
        "Miniature of the CUHK03 release (spreid_tf synthetic data).\n")

    for image_type in ("labeled", "detected"):
        filelist = sorted(names[image_type])
        labels, cams, train_idx, query_idx, gallery_idx = [], [], [], [], []
        for i, name in enumerate(filelist, start=1):
            match = FILENAME.fullmatch(name)
            pair, row, view, cell = (int(match[k]) for k in ("pair", "person", "view", "cell"))
            person = int(offsets[pair - 1]) + row
            labels.append(person)
            cams.append(view)
            if person in new_train:
                train_idx.append(i)
            elif cell - 1 in query[person]:
                query_idx.append(i)
            else:
                gallery_idx.append(i)
        cell_array = np.empty((len(filelist), 1), dtype=object)
        for i, name in enumerate(filelist):
            cell_array[i, 0] = name
        matlab.write_mat5(data / f"cuhk03_new_protocol_config_{image_type}.mat", {
            "filelist": cell_array,
            "labels": np.array(labels, np.float64),
            "camId": np.array(cams, np.float64),
            "train_idx": np.array(train_idx, np.float64),
            "query_idx": np.array(query_idx, np.float64),
            "gallery_idx": np.array(gallery_idx, np.float64),
        })
    stats = expected(seed)
    stats.root = str(root)
    return stats
