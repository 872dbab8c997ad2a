"""A miniature MSMT17_V1 (the layout `spreid_tf.data.readers.msmt17` reads)."""

from __future__ import annotations

import zlib
from pathlib import Path

from spreid_tf.data.readers.msmt17 import NAME, NUM_CAMERAS
from spreid_tf.data.records import REASON_BAD_FILENAME, REASON_CORRUPT, REASON_MISSING, REASON_ZERO_BYTE
from spreid_tf.data.synthetic import files
from spreid_tf.data.synthetic.stats import ExpectedStats, split_stats


def write(root: Path, seed: int = 0) -> ExpectedStats:
    """Writes a miniature MSMT17_V1 under `root/MSMT17_V1/`.

    5 training ids (list_train) + 1 more (list_val), 4 test ids with 1 query and 2
    gallery images each; list lines for a zero-byte, a corrupt, a missing and a
    badly named file, and a malformed line.
    """
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    data = Path(root) / "MSMT17_V1"
    lines: dict[str, list[str]] = {k: [] for k in ("train", "val", "query", "gallery")}
    kept: list[tuple[str, int, int]] = []
    times = ("morning", "noon", "afternoon")
    counter = 0

    def person(list_name: str, pid: int, cam: int, test: bool) -> None:
        nonlocal counter
        counter += 1
        rel = f"{pid:04d}/{pid:04d}_{counter % 1000:03d}_{cam:02d}_0{302 + cam % 3}{times[cam % 3]}_{counter:04d}_0.jpg"
        files.write_person(data / ("test" if test else "train") / rel, base + pid * 7 + 1000 * test,
                           seed * 31 + 200 + cam, counter, 128, 64)
        lines[list_name].append(f"{rel} {pid}")
        kept.append(("train" if list_name == "val" else list_name, pid, cam - 1))

    for pid in range(5):
        for k in range(3):
            person("train", pid, 1 + (pid * 3 + k) % NUM_CAMERAS, test=False)
    for k in range(2):
        person("val", 5, 4 + k, test=False)
    for pid in range(4):
        qcam = 2 + pid * 3  # cameras 02..13; gallery one and two cameras on
        person("query", pid, qcam, test=True)
        person("gallery", pid, qcam + 1, test=True)
        person("gallery", pid, qcam + 2, test=True)

    bad = {
        "train/0001/0001_900_02_0303noon_0900_0.jpg": REASON_ZERO_BYTE,
        "test/0002/0002_901_05_0303noon_0901_0.jpg": REASON_CORRUPT,
        "test/0003/0003_902_06_0303noon_0902_0.jpg": REASON_MISSING,
        "train/0004/0004_903_xx_0303noon_0903_0.jpg": REASON_BAD_FILENAME,
    }
    files.write_zero_byte(data / "train/0001/0001_900_02_0303noon_0900_0.jpg")
    lines["train"].insert(2, "0001/0001_900_02_0303noon_0900_0.jpg 1")
    files.write_corrupt_jpeg(data / "test/0002/0002_901_05_0303noon_0901_0.jpg", seed + 2)
    lines["gallery"].append("0002/0002_901_05_0303noon_0901_0.jpg 2")
    lines["query"].append("0003/0003_902_06_0303noon_0902_0.jpg 3")  # no such file
    files.write_person(data / "train/0004/0004_903_xx_0303noon_0903_0.jpg", base + 28, 1, 1)
    lines["train"].append("0004/0004_903_xx_0303noon_0903_0.jpg 4")
    lines["val"].append("malformed-line")
    bad["train/malformed-line"] = REASON_BAD_FILENAME
    for name, content in lines.items():
        (data / f"list_{name}.txt").write_text("\n".join(content) + "\n")

    return ExpectedStats(splits=split_stats(kept), skipped=bad,
                         info={"include_val": True, "num_val_images": 2, "version": "MSMT17_V1"})
