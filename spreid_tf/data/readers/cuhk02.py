"""CUHK02 (Li and Wang, "Locally Aligned Feature Transforms across Views", CVPR 2013).

URL: http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html (by request).

Raw layout (`root` is `cuhk02/` or the folder that holds it, as torchreid's):

    cuhk02/
      Dataset/
        P1/ cam1/ 001_1.png 001_2.png ...   cam2/ 001_3.png ...    971 ids
        P2/ cam1/ ...  cam2/ ...                                    306 ids
        P3/ ...                                                     107 ids
        P4/ ...                                                     193 ids
        P5/ ...                                                     239 ids

Five camera pairs P1-P5, two cameras each, two images per person per camera.
Filenames: the person's number in its pair comes before the first underscore (the
only part torchreid reads; the rest varies); a name without it is a bad filename.
Numbers restart in every pair, so the person id is keyed by the pair:
`person_id = 10000 * pair + number` (P3's person 12 is 30012). Camera id:
`2 * (pair - 1) + camera - 1` (P1 cam1 = 0, P1 cam2 = 1, ..., P5 cam2 = 9), as torchreid.

Statistics: 1,816 ids, 7,264 images, 10 cameras (5 pairs).

Protocol (`split`): "standard" is torchreid's fixed one: P1-P4 train (1,577 ids);
query = P5 cam1, gallery = P5 cam2 (239 ids); `split_index` must be 0. "all":
every image in train (what the merged training set uses). Note: P1 is CUHK01.
"""

from __future__ import annotations

import re
from pathlib import Path

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.readers import _protocols
from spreid_tf.data.records import (REASON_BAD_FILENAME, ReadResult, Record, Skipped, relpath, require_dir,
                                    resolve_root, scan_images)

NAME = "cuhk02"
DIRNAMES = ("cuhk02", "CUHK02")
PAIRS = ("P1", "P2", "P3", "P4", "P5")
CAMERAS = ("cam1", "cam2")
TEST_PAIR = "P5"
PID_STRIDE = 10000
PATTERN = re.compile(r"(?P<pid>\d+)_[^/]*\.png", re.IGNORECASE)

EXPECTED_TREE = """\
<root>/                          (or <root>/cuhk02/)
  Dataset/
    P1/ cam1/ 001_1.png ...      (person number before the first underscore)
        cam2/ ...
    P2/ ... P5/                  (each with cam1/ and cam2/)
"""


def person_id(pair: int, number: int) -> int:
    """The dataset-wide person id of person `number` of pair `pair` (1-5)."""
    return PID_STRIDE * pair + number


def read(root: Path, split: str = "standard", split_index: int = 0) -> ReadResult:
    """Reads CUHK02 (see the module docstring for the layout and the protocol)."""
    _protocols.check_split_options(NAME, split, split_index, 1)
    data_dir = resolve_root(root, DIRNAMES, "Dataset", EXPECTED_TREE)
    dataset_dir = require_dir(data_dir / "Dataset", EXPECTED_TREE)
    dirs = {(p, c): require_dir(dataset_dir / pair / cam, EXPECTED_TREE)
            for p, pair in enumerate(PAIRS, start=1) for c, cam in enumerate(CAMERAS, start=1)}
    records: dict[str, list[Record]] = {pair: [] for pair in PAIRS}
    skipped: list[Skipped] = []
    for (p, c), directory in dirs.items():
        images, others = scan_images(directory, data_dir, (".png",))
        skipped.extend(others)
        for path in images:
            rel = relpath(path, data_dir)
            match = PATTERN.fullmatch(path.name)
            if match is None:
                skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: expected <person number>_<...>.png"))
                continue
            records[PAIRS[p - 1]].append(Record(relpath=rel, person_id=person_id(p, int(match["pid"])),
                                                camera_id=2 * (p - 1) + c - 1, dataset=NAME,
                                                path=str(path.absolute())))
    info: dict = {"split": split, "num_cameras": 2 * len(PAIRS),
                  "person_id": f"{PID_STRIDE} * pair + person number (pair 1-5)",
                  "camera_id": "2 * (pair - 1) + camera - 1"}
    if split == "all":
        return ReadResult(splits=_protocols.all_in_train([r for pair in PAIRS for r in records[pair]]),
                          skipped=skipped, info=info)
    test = records[TEST_PAIR]
    first_cam = 2 * (PAIRS.index(TEST_PAIR))
    info.update({"split_index": 0, "train_pairs": [p for p in PAIRS if p != TEST_PAIR], "test_pair": TEST_PAIR,
                 "query_camera": first_cam, "gallery_camera": first_cam + 1})
    return ReadResult(
        splits={"train": [r for pair in PAIRS if pair != TEST_PAIR for r in records[pair]],
                "query": [r for r in test if r.camera_id == first_cam],
                "gallery": [r for r in test if r.camera_id == first_cam + 1]},
        skipped=skipped, info=info)


CITATION = """\
@inproceedings{li2013locally,
  title     = {Locally Aligned Feature Transforms across Views},
  author    = {Li, Wei and Wang, Xiaogang},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2013}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html",
    reference="Li and Wang, Locally Aligned Feature Transforms across Views, CVPR 2013",
    citation=CITATION,
    merge_options={"split": "all"},
)
