"""A miniature CUHK01 (the layout `spreid_tf.data.readers.cuhk01` reads)."""

from __future__ import annotations

import zlib
from pathlib import Path

from spreid_tf.data.readers import _protocols
from spreid_tf.data.readers.cuhk01 import IMAGES_PER_ID, NAME
from spreid_tf.data.synthetic.small import Written
from spreid_tf.data.synthetic.stats import ExpectedStats


def write(root: Path, seed: int = 0, options: dict | None = None) -> ExpectedStats:
    """Writes a miniature CUHK01 under `root/cuhk01/campus/`.

    12 ids x 4 images (64x32 px), a zero-byte and a corrupt PNG among them, a
    Thumbs.db, an image index 005 and a copied file name ("0008001 (2).png"). Returns
    the ExpectedStats of reading it with the reader `options` (a dict; default: none).
    """
    options = options or {}
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    log = Written(Path(root) / "cuhk01")
    for pid in range(1, 13):
        for index in range(1, IMAGES_PER_ID + 1):
            rel, cam = f"campus/{pid:04d}{index:03d}.png", (index - 1) // 2
            if (pid, index) == (3, 2):
                log.zero_byte(rel, pid, cam)
            elif (pid, index) == (5, 4):
                log.corrupt(rel, pid, cam, base)
            else:
                log.person(rel, pid, cam, base + pid, seed * 31 + cam, index)
    log.thumbs_db("campus/Thumbs.db")
    log.bad_name("campus/0007005.png", base + 7)
    log.bad_name("campus/0008001 (2).png", base + 8)
    split, split_index, split_seed = (options.get("split", "standard"), options.get("split_index", 0),
                                      options.get("seed", 0))
    splits = ("train", "query", "gallery")
    if split == "all":
        return log.expected_stats(lambda rel, pid, cam: ["train"], splits, {"split": "all"})
    chosen = _protocols.random_id_splits(log.ids(), len(log.ids()) // 2, split_seed)[split_index]

    def assign(rel: str, pid: int, cam: int) -> list[str]:
        if pid in chosen["train"]:
            return ["train"]
        return ["query" if cam == 0 else "gallery"]

    return log.expected_stats(assign, splits, {"split": split, "split_index": split_index,
                                               "seed": split_seed, "num_splits": 10})
