"""Market-1501 (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

URL: http://zheng-lab.cecs.anu.edu.au/Project/project_reid.html
(archive `Market-1501-v15.09.15.zip`).

Raw layout (`root` is `Market-1501-v15.09.15/` or the folder that holds it):

    Market-1501-v15.09.15/
      bounding_box_train/      0002_c1s1_000451_03.jpg ...   12,936 images, 751 ids
      query/                   0001_c1s1_001051_00.jpg ...    3,368 images, 750 ids
      bounding_box_test/       0000_c1s1_000151_01.jpg ...   19,732 files: 13,120 of 750 ids,
                               -1_c1s1_000401_03.jpg ...      2,793 distractors (0000),
                                                              3,819 junk (-1)
      gt_bbox/                 (optional, hand-drawn boxes; not converted)
      gt_query/                (optional, .mat good/junk lists; not converted)

Filenames: `PPPP_cCsS_FFFFFF_BB.jpg`: person id (4 digits, `-1` for junk), camera
c1..c6, sequence s1..s6, frame, box index. Junk images (pid -1) are ignored and counted
in the manifest (`info.num_junk_ignored`); distractors (pid 0000) are kept in the
gallery, as the standard protocol scores them. Stray `Thumbs.db` files are skipped.

Statistics after conversion (torchreid counts): train 12,936 images / 751 ids; query
3,368 / 750; gallery 15,913 / 751 (750 ids + the distractor id 0); 6 cameras.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from spreid_tf.data.records import (REASON_BAD_FILENAME, REASON_CORRUPT, REASON_NOT_IMAGE, REASON_ZERO_BYTE,
                                    ReadResult, resolve_root)
from spreid_tf.data.readers._bounding_box import read_bounding_box_layout
from spreid_tf.data.registry import DatasetInfo, register
from spreid_tf.data.synthetic import files
from spreid_tf.data.synthetic.stats import ExpectedStats, SplitStats

NAME = "market1501"
DIRNAMES = ("Market-1501-v15.09.15", "Market-1501")
PATTERN = re.compile(r"(?P<pid>-1|\d{4})_c(?P<cam>\d)s\d_\d{6}_\d{2}\.jpg")
NUM_CAMERAS = 6

EXPECTED_TREE = """\
<root>/                         (or <root>/Market-1501-v15.09.15/)
  bounding_box_train/  0002_c1s1_000451_03.jpg ...
  query/               0001_c1s1_001051_00.jpg ...
  bounding_box_test/   0000_c1s1_000151_01.jpg, -1_c1s1_000401_03.jpg ...
"""


def read(root: Path) -> ReadResult:
    """Reads Market-1501's train/query/gallery (see the module docstring)."""
    data_dir = resolve_root(root, DIRNAMES, "bounding_box_train", EXPECTED_TREE)
    result = read_bounding_box_layout(data_dir, NAME, PATTERN, NUM_CAMERAS, EXPECTED_TREE,
                                      junk_pid=-1, distractor_pid=0)
    result.info["data_dir"] = data_dir.name
    result.info["has_gt_bbox"] = (data_dir / "gt_bbox").is_dir()
    return result


def _name(pid: int, cam: int, frame: int, box: int = 1) -> str:
    pid_text = "-1" if pid == -1 else f"{pid:04d}"
    return f"{pid_text}_c{cam}s1_{frame:06d}_{box:02d}.jpg"


def write_miniature(root: Path, seed: int = 0) -> ExpectedStats:
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


INFO = register(DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    write_miniature=write_miniature,
    url="http://zheng-lab.cecs.anu.edu.au/Project/project_reid.html",
    reference="Zheng et al., Scalable Person Re-identification: A Benchmark, ICCV 2015",
))
