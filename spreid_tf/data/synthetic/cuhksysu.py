"""A miniature of the CUHK-SYSU person crops (the layout `spreid_tf.data.readers.cuhksysu` reads)."""

from __future__ import annotations

import zlib
from pathlib import Path

from spreid_tf.data.readers.cuhksysu import NAME
from spreid_tf.data.records import REASON_BAD_FILENAME, REASON_CORRUPT, REASON_NOT_IMAGE, REASON_ZERO_BYTE
from spreid_tf.data.synthetic import files
from spreid_tf.data.synthetic.stats import ExpectedStats, split_stats


def write(root: Path, seed: int = 0) -> ExpectedStats:
    """Writes a miniature under `root/cuhksysu/cropped_images/`: 10 ids x 2-3 crops, bad files."""
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    image_dir = Path(root) / "cuhksysu" / "cropped_images"
    kept = []
    scene = 1000
    for i, pid in enumerate([1, 2, 15, 77, 130, 2041, 5000, 9999, 11422, 11934]):
        for k in range(2 + i % 2):
            scene += 37
            files.write_person(image_dir / f"p{pid}_s{scene}_{k + 1}.jpg", base + pid * 7,
                               seed * 31 + 300 + scene % 5, scene, 112, 48)
            kept.append(("train", pid, 0))
    skipped = {
        "cropped_images/p2_s99999_1.jpg": REASON_ZERO_BYTE,
        "cropped_images/p15_s99998_1.jpg": REASON_CORRUPT,
        "cropped_images/person_77.jpg": REASON_BAD_FILENAME,
        "cropped_images/.DS_Store": REASON_NOT_IMAGE,
    }
    files.write_zero_byte(image_dir / "p2_s99999_1.jpg")
    files.write_corrupt_jpeg(image_dir / "p15_s99998_1.jpg", seed + 3)
    files.write_person(image_dir / "person_77.jpg", base + 77 * 7, 1, 1, 112, 48)
    files.write_bytes(image_dir / ".DS_Store", b"\0\0\0\1Bud1")
    return ExpectedStats(splits=split_stats(kept), skipped=skipped, info={"train_only": True})
