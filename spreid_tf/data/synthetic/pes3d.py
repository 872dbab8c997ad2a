"""A miniature 3DPeS (registry name "3dpes"; the layout `spreid_tf.data.readers.pes3d` reads)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from spreid_tf.data.readers import _protocols
from spreid_tf.data.readers.pes3d import NAME, NUM_CAMERAS, choose_queries
from spreid_tf.data.records import Record
from spreid_tf.data.synthetic.small import Written
from spreid_tf.data.synthetic.stats import ExpectedStats


def write(root: Path, seed: int = 0, options: dict | None = None) -> ExpectedStats:
    """Writes a miniature 3DPeS under `root/3DPeS/RGB/`.

    10 persons, each 3-5 images over 2-3 of the 8 cameras (varied sizes); a zero-byte
    and a corrupt BMP, a Thumbs.db, a lower-case `frame` name and a camera 9. Returns
    the ExpectedStats of reading it with the reader `options` (a dict; default: none).
    """
    options = options or {}
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    log = Written(Path(root) / "3DPeS")
    rng = np.random.default_rng(base)
    for pid in range(1, 11):
        cameras = rng.choice(np.arange(1, NUM_CAMERAS + 1), size=2 + pid % 2, replace=False)
        for k in range(3 + pid % 3):
            cam = int(cameras[k % len(cameras)])
            frame = int(rng.integers(1, 5000))
            rel = f"RGB/{pid:03d}_{cam}_FRAME_{frame}_RGB.bmp"
            if (pid, k) == (4, 1):
                log.zero_byte(rel, pid, cam - 1)
            elif (pid, k) == (7, 0):
                log.corrupt(rel, pid, cam - 1, base)
            else:
                log.person(rel, pid, cam - 1, base + pid, seed * 31 + cam, frame,
                           int(rng.integers(90, 130)), int(rng.integers(36, 56)))
    log.thumbs_db("RGB/Thumbs.db")
    log.bad_name("RGB/005_2_frame_12.bmp", base + 5)
    log.bad_name("RGB/006_9_FRAME_12_RGB.bmp", base + 6)
    splits = ("train", "query", "gallery")
    if options.get("split", "standard") == "all":
        return log.expected_stats(lambda rel, pid, cam: ["train"], splits, {"split": "all"})
    split_index, split_seed = options.get("split_index", 0), options.get("seed", 0)
    chosen = _protocols.random_id_splits(log.ids(), len(log.ids()) // 2, split_seed)[split_index]
    listed = [Record(rel, pid, cam, NAME, path=rel) for rel, pid, cam, _ in log.images]
    queries = choose_queries(listed, chosen["test"], split_seed, split_index)

    def assign(rel: str, pid: int, cam: int) -> list[str]:
        if pid in chosen["train"]:
            return ["train"]
        return ["query" if rel in queries else "gallery"]

    return log.expected_stats(assign, splits, {"split": "standard", "split_index": split_index,
                                               "seed": split_seed, "query_images": sorted(queries)})
