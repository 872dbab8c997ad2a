"""VIPeR (Gray, Brennan and Tao, "Evaluating Appearance Models for Recognition,
Reacquisition, and Tracking", PETS 2007).

URL: https://vision.soe.ucsc.edu/node/178 (`VIPeR.v1.0.zip`;
torchreid's copy: http://users.soe.ucsc.edu/~manduchi/VIPeR.v1.0.zip).

Raw layout (`root` is `VIPeR/` or the folder that holds it; torchreid's `viper/`
holds `VIPeR/`):

    VIPeR/
      cam_a/  000_45.bmp 001_45.bmp 002_0.bmp ...    632 images, 128x48
      cam_b/  000_45.bmp 001_90.bmp 002_90.bmp ...   632 images

Filenames: `NNN_A.bmp`, the person's number (000-873, with gaps) and the viewpoint
angle. Each person has one image per camera; the pair is matched by the number
(the same pairs torchreid's sorted-order matching gives). Person id = number + 1
(ids start at 1; 0 means "distractor" in the schema). An image whose person has no
image in the other camera is skipped (missing file: its partner); `Thumbs.db`: not an
image; other names: bad filename. Cameras: cam_a = 0, cam_b = 1.

Statistics: 632 ids, 1,264 images, 2 cameras.

Protocol (`split`): "standard": 316 train / 316 test ids, random split `split_index`
of 10 (seeded with `seed`; all ten are in the manifest's info); query = cam_a images
of the test ids, gallery = cam_b (torchreid's first sub-split; its second swaps
them). "all": every image in train.
"""

from __future__ import annotations

import re
from pathlib import Path

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.readers import _protocols
from spreid_tf.data.records import (REASON_BAD_FILENAME, REASON_MISSING, ReadResult, Record, Skipped, relpath,
                                    require_dir, resolve_root, scan_images)

NAME = "viper"
DIRNAMES = ("VIPeR", "viper")
CAMERAS = ("cam_a", "cam_b")
PATTERN = re.compile(r"(?P<number>\d{3})_(?P<angle>\d{1,3})\.bmp", re.IGNORECASE)

EXPECTED_TREE = """\
<root>/                  (or <root>/VIPeR/)
  cam_a/  000_45.bmp ... NNN_<angle>.bmp, one image per person
  cam_b/  000_45.bmp ...
"""


def read(root: Path, split: str = "standard", split_index: int = 0, seed: int = 0) -> ReadResult:
    """Reads VIPeR (see the module docstring for the layout and the protocol)."""
    _protocols.check_split_options(NAME, split, split_index, _protocols.NUM_RANDOM_SPLITS)
    data_dir = resolve_root(root, DIRNAMES, "cam_a", EXPECTED_TREE)
    dirs = [require_dir(data_dir / cam, EXPECTED_TREE) for cam in CAMERAS]
    skipped: list[Skipped] = []
    by_camera: list[dict[int, Record]] = []
    for cam, directory in enumerate(dirs):
        images, others = scan_images(directory, data_dir, (".bmp",))
        skipped.extend(others)
        found: dict[int, Record] = {}
        for path in images:
            rel = relpath(path, data_dir)
            match = PATTERN.fullmatch(path.name)
            if match is None:
                skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: expected NNN_<angle>.bmp, e.g. 000_45.bmp"))
                continue
            pid = int(match["number"]) + 1
            if pid in found:
                skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: second image of person "
                                            f"{match['number']} in {CAMERAS[cam]} (after {found[pid].relpath})"))
                continue
            found[pid] = Record(relpath=rel, person_id=pid, camera_id=cam, dataset=NAME, path=str(path.absolute()))
        by_camera.append(found)
    paired = sorted(set(by_camera[0]) & set(by_camera[1]))
    for cam, found in enumerate(by_camera):
        for pid in sorted(set(found) - set(paired)):
            skipped.append(Skipped(found[pid].relpath, f"{REASON_MISSING}: no {CAMERAS[1 - cam]} image of person "
                                                       f"{pid - 1:03d} to pair it with"))
    records = [by_camera[cam][pid] for pid in paired for cam in (0, 1)]
    info: dict = {"split": split, "num_cameras": 2, "num_pairs": len(paired),
                  "person_id": "number in the file name + 1", "camera_id": "0 = cam_a, 1 = cam_b"}
    if split == "all":
        return ReadResult(splits=_protocols.all_in_train(records), skipped=skipped, info=info)
    splits, protocol = _protocols.two_camera_split(records, paired, split_index, seed)
    info.update(protocol)
    return ReadResult(splits=splits, skipped=skipped, info=info)


CITATION = """\
@inproceedings{gray2007evaluating,
  title     = {Evaluating Appearance Models for Recognition, Reacquisition, and Tracking},
  author    = {Gray, Douglas and Brennan, Shane and Tao, Hai},
  booktitle = {IEEE International Workshop on Performance Evaluation for Tracking and Surveillance (PETS)},
  year      = {2007}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="https://vision.soe.ucsc.edu/node/178",
    reference="Gray, Brennan and Tao, Evaluating Appearance Models for Recognition, Reacquisition, and "
              "Tracking, PETS 2007",
    citation=CITATION,
    merge_options={"split": "all"},
)
