"""A miniature Shinpuhkan2014 (the layout `spreid_tf.data.readers.shinpuhkan` reads)."""

from __future__ import annotations

import zlib
from pathlib import Path

from spreid_tf.data.readers.shinpuhkan import NAME, NUM_CAMERAS
from spreid_tf.data.synthetic.small import Written
from spreid_tf.data.synthetic.stats import ExpectedStats


def write(root: Path, seed: int = 0, options: dict | None = None) -> ExpectedStats:
    """Writes a miniature Shinpuhkan2014 under `root/Shinpuhkan2014dataset/images/`.

    4 persons, each seen by 4 of the 16 cameras in two tracklets; a zero-byte and a
    corrupt JPEG, a Thumbs.db, a 2-digit person and a camera 17. Returns the
    ExpectedStats of reading it with the reader `options` (a dict; default: none).
    """
    options = options or {}
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    log = Written(Path(root) / "Shinpuhkan2014dataset")
    for pid in range(1, 5):
        for j in range(4):
            cam = 1 + (4 * pid + 3 * j) % NUM_CAMERAS
            for tracklet in (1, 2):
                frame = 100 * pid + 10 * j + tracklet
                rel = f"images/{pid:03d}_{cam:02d}_{tracklet}_{frame:05d}.jpg"
                if (pid, j, tracklet) == (2, 1, 2):
                    log.zero_byte(rel, pid, cam - 1)
                elif (pid, j, tracklet) == (3, 0, 1):
                    log.corrupt(rel, pid, cam - 1, base)
                else:
                    log.person(rel, pid, cam - 1, base + pid, seed * 31 + cam, frame, 96, 40)
    log.thumbs_db("images/Thumbs.db")
    log.bad_name("images/01_01_1_00001.jpg", base + 1)
    log.bad_name("images/001_17_1_00001.jpg", base + 2)
    return log.expected_stats(lambda rel, pid, cam: ["train"], ("train",),
                              {"split": options.get("split", "standard"), "protocol": "training only"})
