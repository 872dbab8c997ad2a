"""A miniature DukeMTMC-reID (the layout `spreid_tf.data.readers.dukemtmcreid` reads)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from spreid_tf.data.readers.dukemtmcreid import DIRNAMES, NAME, NUM_CAMERAS
from spreid_tf.data.records import REASON_BAD_FILENAME, REASON_CORRUPT, REASON_ZERO_BYTE
from spreid_tf.data.synthetic import files
from spreid_tf.data.synthetic.stats import ExpectedStats, split_stats


def write(root: Path, seed: int = 0) -> ExpectedStats:
    """Writes a miniature DukeMTMC-reID under `root/DukeMTMC-reID/`.

    6 training ids x 4 images, 4 test ids (1 query + 2 gallery images each), 2
    gallery-only distractor ids x 2 images; crops of varying size as in the real set;
    plus a zero-byte, a corrupt and a badly named file.
    """
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    rng = np.random.default_rng(seed)
    data = Path(root) / DIRNAMES[0]
    frame = 40000
    kept: list[tuple[str, int, int]] = []
    split_of = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}

    def person(split_dir: str, pid: int, cam: int) -> None:
        nonlocal frame
        frame += 137
        kept.append((split_of[split_dir], pid, cam))
        height = int(rng.integers(96, 160))
        width = int(height * rng.uniform(0.35, 0.5))
        files.write_person(data / split_dir / f"{pid:04d}_c{cam}_f{frame:07d}.jpg", base + pid * 7,
                           seed * 31 + 100 + cam, frame, height, width)

    for i, pid in enumerate([1, 3, 8, 9, 14, 15]):
        for k in range(4):
            person("bounding_box_train", pid, 1 + (2 * i + k) % NUM_CAMERAS)
    for i, pid in enumerate([5, 6, 16, 17]):
        qcam = 1 + (2 * i) % NUM_CAMERAS
        person("query", pid, qcam)
        person("bounding_box_test", pid, 1 + qcam % NUM_CAMERAS)
        person("bounding_box_test", pid, 1 + (qcam + 2) % NUM_CAMERAS)
    for pid in (2, 4):
        for cam in (3, 7):
            person("bounding_box_test", pid, cam)

    skipped = {
        "bounding_box_train/0001_c1_f0099999.jpg": REASON_ZERO_BYTE,
        "bounding_box_test/0005_c4_f0099998.jpg": REASON_CORRUPT,
        "query/0006_c2_f99997.jpg": REASON_BAD_FILENAME,  # 5-digit frame
    }
    files.write_zero_byte(data / "bounding_box_train/0001_c1_f0099999.jpg")
    files.write_corrupt_jpeg(data / "bounding_box_test/0005_c4_f0099998.jpg", seed + 1)
    files.write_person(data / "query/0006_c2_f99997.jpg", base + 42, 2, 1)
    (data / "CITATION.txt").write_text("DukeMTMC-reID miniature (synthetic)\n")

    return ExpectedStats(splits=split_stats(kept), skipped=skipped)
