"""A miniature Market-1501-v15.09.15 (the layout `spreid_tf.data.readers.market1501` reads)."""

from __future__ import annotations

import zlib
from pathlib import Path

from spreid_tf.data.readers.market1501 import DIRNAMES, NAME, NUM_CAMERAS
from spreid_tf.data.records import REASON_BAD_FILENAME, REASON_CORRUPT, REASON_NOT_IMAGE, REASON_ZERO_BYTE
from spreid_tf.data.synthetic import files
from spreid_tf.data.synthetic.stats import ExpectedStats, SplitStats


def _name(pid: int, cam: int, frame: int, box: int = 1) -> str:
    pid_text = "-1" if pid == -1 else f"{pid:04d}"
    return f"{pid_text}_c{cam}s1_{frame:06d}_{box:02d}.jpg"


def write(root: Path, seed: int = 0) -> ExpectedStats:
    """Writes a miniature Market-1501 under `root/Market-1501-v15.09.15/`.

    8 training ids x 4 images, 5 test ids (1 query + 3 gallery images each, one of them
    from the query's camera), 3 distractors and 2 junk images in the gallery, plus a
    Thumbs.db, a zero-byte and a corrupt JPEG, and a badly named file.
    """
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    data = Path(root) / DIRNAMES[0]
    train_dir, query_dir, gallery_dir = (data / d for d in ("bounding_box_train", "query", "bounding_box_test"))
    frame = 100

    def person(directory: Path, pid: int, cam: int) -> None:
        nonlocal frame
        frame += 25
        files.write_person(directory / _name(pid, cam, frame), base + max(pid, 0) * 7 + (pid < 0),
                           seed * 31 + cam, frame, 128, 64)

    train_ids = [2, 7, 10, 11, 12, 20, 22, 23]
    for i, pid in enumerate(train_ids):
        for k in range(4):
            person(train_dir, pid, 1 + (i + k) % NUM_CAMERAS)
    test_ids = [1, 3, 4, 5, 6]
    for i, pid in enumerate(test_ids):
        qcam = 1 + i % NUM_CAMERAS
        person(query_dir, pid, qcam)
        for cam in (qcam, 1 + (qcam % NUM_CAMERAS), 1 + ((qcam + 1) % NUM_CAMERAS)):
            person(gallery_dir, pid, cam)
    for cam in (1, 3, 5):
        person(gallery_dir, 0, cam)  # distractors: kept
    for cam in (2, 4):
        person(gallery_dir, -1, cam)  # junk: ignored

    skipped = {
        "bounding_box_train/Thumbs.db": REASON_NOT_IMAGE,
        "bounding_box_test/Thumbs.db": REASON_NOT_IMAGE,
        "bounding_box_train/0007_c3s1_009999_01.jpg": REASON_ZERO_BYTE,
        "bounding_box_train/0010_c2s1_009998_01.jpg": REASON_CORRUPT,
        "bounding_box_test/0003_c1s1_009997_01 (copy).jpg": REASON_BAD_FILENAME,
        "query/0004_c7s1_009996_00.jpg": REASON_BAD_FILENAME,  # no camera 7
    }
    files.write_thumbs_db(train_dir / "Thumbs.db")
    files.write_thumbs_db(gallery_dir / "Thumbs.db")
    files.write_zero_byte(data / "bounding_box_train/0007_c3s1_009999_01.jpg")
    files.write_corrupt_jpeg(data / "bounding_box_train/0010_c2s1_009998_01.jpg", seed)
    files.write_person(data / "bounding_box_test/0003_c1s1_009997_01 (copy).jpg", base + 21, 1, 1)
    files.write_person(data / "query/0004_c7s1_009996_00.jpg", base + 28, 7, 1)

    return ExpectedStats(
        splits={
            "train": SplitStats(num_images=32, num_ids=8, num_cameras=6),
            "query": SplitStats(num_images=5, num_ids=5, num_cameras=5),
            "gallery": SplitStats(num_images=18, num_ids=6, num_cameras=6),
        },
        skipped=skipped,
        info={"num_junk_ignored": {"train": 0, "query": 0, "gallery": 2},
              "num_distractors": {"train": 0, "query": 0, "gallery": 3}},
    )
