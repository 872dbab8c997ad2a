"""A miniature VIPeR (the layout `spreid_tf.data.readers.viper` reads)."""

from __future__ import annotations

import zlib
from pathlib import Path

from spreid_tf.data.readers import _protocols
from spreid_tf.data.readers.viper import CAMERAS, NAME
from spreid_tf.data.records import REASON_MISSING
from spreid_tf.data.synthetic.small import Written
from spreid_tf.data.synthetic.stats import ExpectedStats


def write(root: Path, seed: int = 0, options: dict | None = None) -> ExpectedStats:
    """Writes a miniature VIPeR under `root/VIPeR/`.

    12 pairs with gapped numbers and various angles (128x48 px, the real size); a
    zero-byte cam_b image and a corrupt cam_a image (their partners stay), a person
    only in cam_a, a Thumbs.db and a misnamed file. Returns the ExpectedStats of
    reading it with the reader `options` (a dict; default: none).
    """
    options = options or {}
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    log = Written(Path(root) / "VIPeR")
    numbers = (0, 2, 3, 5, 8, 11, 13, 17, 20, 24, 31, 40)
    angles = (0, 45, 90, 135, 180)
    for i, number in enumerate(numbers):
        pid = number + 1
        for cam, folder in enumerate(CAMERAS):
            rel = f"{folder}/{number:03d}_{angles[(i + 2 * cam) % len(angles)]}.bmp"
            if (number, cam) == (8, 1):
                log.zero_byte(rel, pid, cam)
            elif (number, cam) == (11, 0):
                log.corrupt(rel, pid, cam, base)
            else:
                log.person(rel, pid, cam, base + pid, seed * 31 + cam, i, 128, 48)
    log.bad_name("cam_a/050_90.bmp", base + 51, REASON_MISSING)  # no cam_b image of person 050
    log.thumbs_db("cam_b/Thumbs.db")
    log.bad_name("cam_b/12_90.bmp", base + 12)
    splits = ("train", "query", "gallery")
    if options.get("split", "standard") == "all":
        return log.expected_stats(lambda rel, pid, cam: ["train"], splits, {"split": "all", "num_pairs": 12})
    split_index, split_seed = options.get("split_index", 0), options.get("seed", 0)
    chosen = _protocols.random_id_splits(log.ids(), len(log.ids()) // 2, split_seed)[split_index]

    def assign(rel: str, pid: int, cam: int) -> list[str]:
        if pid in chosen["train"]:
            return ["train"]
        return ["query" if cam == 0 else "gallery"]

    return log.expected_stats(assign, splits, {"split": "standard", "split_index": split_index,
                                               "seed": split_seed, "num_pairs": 12})
