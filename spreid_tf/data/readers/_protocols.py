"""Evaluation protocols shared by the small benchmarks (CUHK01/02, VIPeR, PRID, 3DPeS, Shinpuhkan).

Each of these readers takes `split`:

- "standard" (default): "train" plus "query"/"gallery" of the benchmark's usual
  protocol, from random split `split_index` of `NUM_RANDOM_SPLITS` (seeded with
  `seed`; the whole list of splits goes into the manifest's info, as torchreid's
  splits.json holds it), or the fixed split where the benchmark has one.
- "all": every image in "train" and empty "query"/"gallery". This is how the merged
  ten-benchmark training set uses them (Xiao et al.'s DGD "JSTL" set and SPReID train
  on all images of the small benchmarks).

Splits are drawn with numpy's default_rng(seed), so they are the same on every
machine; they are not torchreid's (which draws with an unseeded np.random).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from spreid_tf.data.records import Record

SPLIT_CHOICES = ("standard", "all")
NUM_RANDOM_SPLITS = 10


def check_split_options(dataset: str, split: str, split_index: int, num_splits: int) -> None:
    """Raises ValueError for an unknown `split` or an out-of-range `split_index`."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"{dataset}: split must be one of {SPLIT_CHOICES}, got {split!r}")
    if not 0 <= split_index < num_splits:
        raise ValueError(f"{dataset}: split_index must be in [0, {num_splits}), got {split_index}")


def random_id_splits(ids: Iterable[int], num_train: int, seed: int,
                     num_splits: int = NUM_RANDOM_SPLITS) -> list[dict[str, list[int]]]:
    """`num_splits` random train/test partitions of `ids` (train has `num_train` ids).

    Returns:
        [{"train": sorted ids, "test": sorted ids}, ...], deterministic in `seed`.
    """
    ids = np.array(sorted(set(int(i) for i in ids)), dtype=np.int64)
    if not 0 <= num_train <= len(ids):
        raise ValueError(f"num_train={num_train} outside [0, {len(ids)}]")
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(num_splits):
        order = rng.permutation(len(ids))
        splits.append({"train": sorted(ids[order[:num_train]].tolist()),
                       "test": sorted(ids[order[num_train:]].tolist())})
    return splits


def all_in_train(records: Sequence[Record]) -> dict[str, list[Record]]:
    """split="all": every record in train, empty query and gallery."""
    return {"train": list(records), "query": [], "gallery": []}


def by_ids(records: Sequence[Record], ids: Iterable[int]) -> list[Record]:
    """The records whose person id is in `ids` (order kept)."""
    ids = set(ids)
    return [r for r in records if r.person_id in ids]


def two_camera_split(records: Sequence[Record], ids: Iterable[int], split_index: int,
                     seed: int) -> tuple[dict[str, list[Record]], dict]:
    """Random half/half id split; test ids give camera 0 as query and camera 1 as gallery.

    The protocol of CUHK01 and VIPeR (torchreid's). Returns the splits and the facts to
    add to the reader's info (the whole list of random splits included).
    """
    ids = sorted(set(ids))
    splits = random_id_splits(ids, len(ids) // 2, seed)
    chosen = splits[split_index]
    test = set(chosen["test"])
    info = {"split_index": split_index, "seed": seed, "num_splits": len(splits), "splits": splits,
            "query_camera": 0, "gallery_camera": 1}
    return {"train": by_ids(records, chosen["train"]),
            "query": [r for r in records if r.person_id in test and r.camera_id == 0],
            "gallery": [r for r in records if r.person_id in test and r.camera_id == 1]}, info
