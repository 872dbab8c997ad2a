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
from pathlib import Path

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.readers._bounding_box import read_bounding_box_layout
from spreid_tf.data.records import ReadResult, resolve_root

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


CITATION = """\
@inproceedings{zheng2015scalable,
  title     = {Scalable Person Re-identification: A Benchmark},
  author    = {Zheng, Liang and Shen, Liyue and Tian, Lu and Wang, Shengjin and Wang, Jingdong and Tian, Qi},
  booktitle = {IEEE International Conference on Computer Vision (ICCV)},
  year      = {2015}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="http://zheng-lab.cecs.anu.edu.au/Project/project_reid.html",
    reference="Zheng et al., Scalable Person Re-identification: A Benchmark, ICCV 2015",
    citation=CITATION,
)
