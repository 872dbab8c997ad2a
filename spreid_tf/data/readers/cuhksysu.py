"""CUHK-SYSU / PSDB person crops (Xiao et al., "Joint Detection and Identification
Feature Learning for Person Search", CVPR 2017; arXiv 2016 "End-to-End Deep Learning
for Person Search").

URL: http://www.ee.cuhk.edu.hk/~xgwang/PS/dataset.html (scenes and .mat annotations);
the person crops are the `cropped_images/` folder torchreid and fast-reid read.

Raw layout (`root` is the folder holding `cropped_images/`, or `cuhksysu/` above it):

    cuhksysu/
      cropped_images/     p11422_s16929_1.jpg ...    34,574 crops, 11,934 ids

Filenames: `p<person id>_s<scene image id>[_<k>].jpg`. The whole set is training data
(torchreid marks it train-only): every crop goes to `train`, camera 0 for all (the
scenes come from street snapshots and movies, not fixed cameras; torchreid uses a
dummy camera 0 too).

Statistics: train 34,574 images / 11,934 ids; 1 camera.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from spreid_tf.data.records import (REASON_BAD_FILENAME, REASON_CORRUPT, REASON_NOT_IMAGE, REASON_ZERO_BYTE,
                                    ReadResult, Record, Skipped, relpath, require_dir, resolve_root, scan_images)
from spreid_tf.data.registry import DatasetInfo, register
from spreid_tf.data.synthetic import files
from spreid_tf.data.synthetic.stats import ExpectedStats, split_stats

NAME = "cuhksysu"
DIRNAMES = ("cuhksysu", "CUHK-SYSU", "cuhk_sysu")
PATTERN = re.compile(r"p(?P<pid>\d+)_s(?P<scene>\d+)(_\d+)?\.jpg")

EXPECTED_TREE = """\
<root>/                    (or <root>/cuhksysu/)
  cropped_images/          p11422_s16929_1.jpg ...
"""


def read(root: Path) -> ReadResult:
    """Reads every CUHK-SYSU crop into `train` (see the module docstring)."""
    data_dir = resolve_root(root, DIRNAMES, "cropped_images", EXPECTED_TREE)
    image_dir = require_dir(data_dir / "cropped_images", EXPECTED_TREE)
    images, skipped = scan_images(image_dir, data_dir, (".jpg",))
    records = []
    for path in images:
        rel = relpath(path, data_dir)
        match = PATTERN.fullmatch(path.name)
        if match is None:
            skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: expected {PATTERN.pattern}"))
            continue
        records.append(Record(relpath=rel, person_id=int(match["pid"]), camera_id=0, dataset=NAME,
                              path=str(path.absolute())))
    info = {"train_only": True, "camera": "0 for every crop (as torchreid)",
            "num_scenes": len({PATTERN.fullmatch(Path(r.relpath).name)["scene"] for r in records})}
    return ReadResult(splits={"train": records}, skipped=skipped, info=info)


def write_miniature(root: Path, seed: int = 0) -> ExpectedStats:
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


INFO = register(DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    write_miniature=write_miniature,
    url="http://www.ee.cuhk.edu.hk/~xgwang/PS/dataset.html",
    reference="Xiao et al., Joint Detection and Identification Feature Learning for Person Search, CVPR 2017",
    splits=("train",),
))
