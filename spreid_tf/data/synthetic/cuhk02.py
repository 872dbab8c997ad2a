"""A miniature CUHK02 (the layout `spreid_tf.data.readers.cuhk02` reads)."""

from __future__ import annotations

import zlib
from pathlib import Path

from spreid_tf.data.readers.cuhk02 import NAME, person_id
from spreid_tf.data.synthetic.small import Written
from spreid_tf.data.synthetic.stats import ExpectedStats


def write(root: Path, seed: int = 0, options: dict | None = None) -> ExpectedStats:
    """Writes a miniature CUHK02 under `root/cuhk02/Dataset/`.

    Persons per pair P1-P5: 5, 3, 2, 2, 4 (numbers restart at 001 in every pair), two
    images per camera; a zero-byte file (P2), a corrupt PNG (P5), a Thumbs.db (P3) and
    a name without a person number (P4). Returns the ExpectedStats of reading it with
    the reader `options` (a dict; default: none).
    """
    options = options or {}
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    log = Written(Path(root) / "cuhk02")
    for p, count in enumerate((5, 3, 2, 2, 4), start=1):
        for number in range(1, count + 1):
            pid = person_id(p, number)
            for c in (1, 2):
                cam = 2 * (p - 1) + c - 1
                for k in (1, 2):
                    rel = f"Dataset/P{p}/cam{c}/{number:03d}_{2 * (c - 1) + k}.png"
                    if (p, number, c, k) == (2, 2, 2, 2):
                        log.zero_byte(rel, pid, cam)
                    elif (p, number, c, k) == (5, 3, 1, 1):
                        log.corrupt(rel, pid, cam, base)
                    else:
                        log.person(rel, pid, cam, base + pid, seed * 31 + cam, k)
    log.thumbs_db("Dataset/P3/cam1/Thumbs.db")
    log.bad_name("Dataset/P4/cam2/img_1.png", base + 4)
    splits = ("train", "query", "gallery")
    if options.get("split", "standard") == "all":
        return log.expected_stats(lambda rel, pid, cam: ["train"], splits, {"split": "all"})

    def assign(rel: str, pid: int, cam: int) -> list[str]:
        if not rel.startswith("Dataset/P5/"):
            return ["train"]
        return ["query" if rel.startswith("Dataset/P5/cam1/") else "gallery"]

    return log.expected_stats(assign, splits, {"split": "standard", "test_pair": "P5", "query_camera": 8,
                                               "gallery_camera": 9})
