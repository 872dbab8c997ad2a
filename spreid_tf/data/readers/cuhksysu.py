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
from pathlib import Path

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.records import (REASON_BAD_FILENAME, ReadResult, Record, Skipped, relpath, require_dir,
                                    resolve_root, scan_images)

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


CITATION = """\
@inproceedings{xiao2017joint,
  title     = {Joint Detection and Identification Feature Learning for Person Search},
  author    = {Xiao, Tong and Li, Shuang and Wang, Bochao and Lin, Liang and Wang, Xiaogang},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2017}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="http://www.ee.cuhk.edu.hk/~xgwang/PS/dataset.html",
    reference="Xiao et al., Joint Detection and Identification Feature Learning for Person Search, CVPR 2017",
    citation=CITATION,
    splits=("train",),
)
