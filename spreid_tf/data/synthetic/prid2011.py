"""A miniature PRID2011, single shot (the layout `spreid_tf.data.readers.prid2011` reads)."""

from __future__ import annotations

import zlib
from pathlib import Path

from spreid_tf.data.readers import _protocols
from spreid_tf.data.readers.prid2011 import CAM_B_ONLY_OFFSET, CAMERAS, NAME, NUM_SHARED
from spreid_tf.data.synthetic.small import Written
from spreid_tf.data.synthetic.stats import ExpectedStats


def write(root: Path, seed: int = 0, options: dict | None = None) -> ExpectedStats:
    """Writes a miniature PRID2011 under `root/prid_2011/single_shot/`.

    The real structure, smaller images (64x32 px): cam_a persons 1-205, cam_b persons
    1-212 (1-200 in both); a corrupt cam_a image of a shared person, a zero-byte
    cam_b-only image, a Thumbs.db and a 3-digit name. Returns the ExpectedStats of
    reading it with the reader `options` (a dict; default: none).
    """
    options = options or {}
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    log = Written(Path(root) / "prid_2011")
    shared, counts = NUM_SHARED, (205, 212)
    for cam, folder in enumerate(CAMERAS):
        for number in range(1, counts[cam] + 1):
            pid = number if number <= shared or cam == 0 else CAM_B_ONLY_OFFSET + number
            rel = f"single_shot/{folder}/person_{number:04d}.png"
            if (cam, number) == (0, 3):
                log.corrupt(rel, pid, cam, base)
            elif (cam, number) == (1, 207):
                log.zero_byte(rel, pid, cam)
            else:
                log.person(rel, pid, cam, base + pid, seed * 31 + cam, number, 64, 32)
    log.thumbs_db("single_shot/cam_a/Thumbs.db")
    log.bad_name("single_shot/cam_b/person_018.png", base + 18)  # 3 digits
    (log.root / "multi_shot" / "cam_a").mkdir(parents=True, exist_ok=True)
    splits = ("train", "query", "gallery")
    info = {"num_shared_ids": shared, "num_cam_a_only_ids": counts[0] - shared,
            "num_cam_b_only_ids": counts[1] - shared}
    if options.get("split", "standard") == "all":
        return log.expected_stats(lambda rel, pid, cam: ["train"], splits, {"split": "all", **info})
    split_index, split_seed = options.get("split_index", 0), options.get("seed", 0)
    chosen = _protocols.random_id_splits(range(1, shared + 1), shared // 2, split_seed)[split_index]

    def assign(rel: str, pid: int, cam: int) -> list[str]:
        if pid in chosen["train"]:
            return ["train"]
        if pid in chosen["test"]:
            return ["query" if cam == 0 else "gallery"]
        return ["gallery"] if cam == 1 else []  # cam_b-only: distractor; cam_a-only: unused

    return log.expected_stats(assign, splits, {"split": "standard", "split_index": split_index,
                                               "seed": split_seed, "num_unused_cam_a_only": counts[0] - shared,
                                               **info})
