"""Shinpuhkan2014 (Kawanishi et al., "Shinpuhkan2014: A Multi-Camera Pedestrian Dataset
for Tracking People across Multiple Cameras", FCV 2014). Training only.

URL: http://www.mm.media.kyoto-u.ac.jp/en/datasets/shinpuhkan/ (by e-mail request;
`Shinpuhkan2014dataset.zip`).

Raw layout (`root` is `Shinpuhkan2014dataset/` or the folder that holds it):

    Shinpuhkan2014dataset/
      images/
        001_01_1_00012.jpg 001_01_1_00015.jpg ... 024_16_2_01873.jpg   ~22,000 images

Filenames: `PPP_CC_...jpg`: person 001-024 (characters 1-3) and camera 01-16
(characters 5-6), then tracklet and frame fields that are not read. This is the
rule of DGD's data/format_shinpuhkan.py (`int(name[0:3])`, `int(name[4:6])` over
`images/*.jpg`), the code whose merged training set SPReID extends; the trailing
fields could not be checked here (no download). Images may also sit in sub-folders
of `images/` (e.g. one per person; fast-reid walks the whole tree): the reader walks
it too. Camera id = camera - 1. `Thumbs.db`: not an image; other names: bad filename.

Statistics: 24 ids, ~22,000 images, 16 cameras; each person has ~86 tracklets
(several directions in every camera).

Protocol: none; there is only a "train" split (`split` "standard" and "all" both give
it), as DGD and fast-reid use it.
"""

from __future__ import annotations

import re
from pathlib import Path

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.readers import _protocols
from spreid_tf.data.records import (REASON_BAD_FILENAME, ReadResult, Record, Skipped, relpath, require_dir,
                                    resolve_root, scan_images)

NAME = "shinpuhkan"
DIRNAMES = ("Shinpuhkan2014dataset", "shinpuhkan")
NUM_CAMERAS = 16
PATTERN = re.compile(r"(?P<pid>\d{3})_(?P<cam>\d{2})(_[^/]*)?\.jpg", re.IGNORECASE)

EXPECTED_TREE = """\
<root>/                         (or <root>/Shinpuhkan2014dataset/)
  images/  001_01_1_00012.jpg ...   PPP_CC_...jpg: person 001-024, camera 01-16
"""


def read(root: Path, split: str = "standard", split_index: int = 0) -> ReadResult:
    """Reads Shinpuhkan2014 into one "train" split (see the module docstring)."""
    _protocols.check_split_options(NAME, split, split_index, 1)
    data_dir = resolve_root(root, DIRNAMES, "images", EXPECTED_TREE)
    images_dir = require_dir(data_dir / "images", EXPECTED_TREE)
    images, skipped = scan_images(images_dir, data_dir, (".jpg", ".jpeg"), recursive=True)
    records: list[Record] = []
    for path in images:
        rel = relpath(path, data_dir)
        match = PATTERN.fullmatch(path.name)
        if match is None:
            skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: expected PPP_CC_...jpg, e.g. 001_01_1_00012.jpg"))
            continue
        cam = int(match["cam"])
        if not 1 <= cam <= NUM_CAMERAS:
            skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: camera {cam:02d} outside 01-{NUM_CAMERAS}"))
            continue
        records.append(Record(relpath=rel, person_id=int(match["pid"]), camera_id=cam - 1, dataset=NAME,
                              path=str(path.absolute())))
    info = {"split": split, "num_cameras": NUM_CAMERAS, "camera_id": "camera number in the name - 1",
            "protocol": "training only"}
    return ReadResult(splits={"train": records}, skipped=skipped, info=info)


CITATION = """\
@inproceedings{kawanishi2014shinpuhkan2014,
  title     = {Shinpuhkan2014: A Multi-Camera Pedestrian Dataset for Tracking People across Multiple Cameras},
  author    = {Kawanishi, Yasutomo and Wu, Yang and Mukunoki, Masaaki and Minoh, Michihiko},
  booktitle = {Korea-Japan Joint Workshop on Frontiers of Computer Vision (FCV)},
  year      = {2014}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="http://www.mm.media.kyoto-u.ac.jp/en/datasets/shinpuhkan/",
    reference="Kawanishi et al., Shinpuhkan2014: A Multi-Camera Pedestrian Dataset for Tracking People across "
              "Multiple Cameras, FCV 2014",
    citation=CITATION,
    splits=("train",),
    merge_options={"split": "all"},
)
