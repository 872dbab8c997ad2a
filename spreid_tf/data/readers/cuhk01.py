"""CUHK01 (Li, Zhao and Wang, "Human Reidentification with Transferred Metric Learning",
ACCV 2012).

URL: http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html (`CUHK01.zip`, by request).

Raw layout (`root` is `cuhk01/` or the folder that holds it, as torchreid's; the zip
unpacks to `campus/`):

    cuhk01/
      campus/
        0001001.png 0001002.png 0001003.png 0001004.png 0002001.png ...   3,884 images

Filenames: `PPPPIII.png`, a 4-digit person id (0001-0971) and a 3-digit image index
(001-004). Images 1-2 are from camera A (mostly front/back views), 3-4 from camera B
(side views): camera id = (index - 1) // 2, as torchreid. Other files are skipped
(`Thumbs.db`: not an image; other names or an index outside 1-4: bad filename).

Statistics: 971 ids, 3,884 images (4 per id), 2 cameras.

Protocol (`split`, see readers/_protocols.py): "standard": 485 train ids (half,
rounded down) and 486 test ids, random split `split_index` of 10 (seeded with `seed`);
query = camera A images of the test ids, gallery = their camera B images (torchreid's
first sub-split; its second swaps query and gallery). "all": every image in train.
Note: CUHK02's pair P1 is CUHK01 (the same 971 people), so do not merge both and test
on either.
"""

from __future__ import annotations

import re
from pathlib import Path

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.readers import _protocols
from spreid_tf.data.records import (REASON_BAD_FILENAME, ReadResult, Record, Skipped, relpath, require_dir,
                                    resolve_root, scan_images)

NAME = "cuhk01"
DIRNAMES = ("cuhk01", "CUHK01")
PATTERN = re.compile(r"(?P<pid>\d{4})(?P<index>\d{3})\.png")
IMAGES_PER_ID = 4

EXPECTED_TREE = """\
<root>/                     (or <root>/cuhk01/)
  campus/
    0001001.png ...         PPPPIII.png: person 0001-0971, image 001-004 (1-2 camera A, 3-4 camera B)
"""


def read(root: Path, split: str = "standard", split_index: int = 0, seed: int = 0) -> ReadResult:
    """Reads CUHK01 (see the module docstring for the layout and the protocol)."""
    _protocols.check_split_options(NAME, split, split_index, _protocols.NUM_RANDOM_SPLITS)
    data_dir = resolve_root(root, DIRNAMES, "campus", EXPECTED_TREE)
    campus = require_dir(data_dir / "campus", EXPECTED_TREE)
    images, skipped = scan_images(campus, data_dir, (".png",))
    records: list[Record] = []
    for path in images:
        rel = relpath(path, data_dir)
        match = PATTERN.fullmatch(path.name)
        if match is None:
            skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: expected PPPPIII.png, e.g. 0001001.png"))
            continue
        index = int(match["index"])
        if not 1 <= index <= IMAGES_PER_ID:
            skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: image index {index:03d} outside 001-004"))
            continue
        records.append(Record(relpath=rel, person_id=int(match["pid"]), camera_id=(index - 1) // 2,
                              dataset=NAME, path=str(path.absolute())))
    info: dict = {"split": split, "num_cameras": 2,
                  "camera_id": "0 = camera A (images 1-2), 1 = camera B (images 3-4)"}
    if split == "all":
        return ReadResult(splits=_protocols.all_in_train(records), skipped=skipped, info=info)
    splits, protocol = _protocols.two_camera_split(records, {r.person_id for r in records}, split_index, seed)
    info.update(protocol)
    return ReadResult(splits=splits, skipped=skipped, info=info)


CITATION = """\
@inproceedings{li2012human,
  title     = {Human Reidentification with Transferred Metric Learning},
  author    = {Li, Wei and Zhao, Rui and Wang, Xiaogang},
  booktitle = {Asian Conference on Computer Vision (ACCV)},
  year      = {2012}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html",
    reference="Li, Zhao and Wang, Human Reidentification with Transferred Metric Learning, ACCV 2012",
    citation=CITATION,
    merge_options={"split": "all"},
)
