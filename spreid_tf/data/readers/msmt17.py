"""MSMT17 (Wei et al., "Person Transfer GAN to Bridge Domain Gap for Person
Re-Identification", CVPR 2018).

URL: https://www.pkuvmc.com/dataset.html (by request; V1 release `MSMT17_V1`, the
face-masked V2 release `MSMT17_V2`).

Raw layout (`root` is `MSMT17_V1/` / `MSMT17_V2/` or the folder that holds it):

    MSMT17_V1/
      train/               0000/0000_000_01_0303morning_0015_0.jpg ...
      test/                0000/0000_000_01_0303morning_0036_0.jpg ...
      list_train.txt       "0000/0000_000_01_0303morning_0015_0.jpg 0"   30,248 lines
      list_val.txt                                                      2,373 lines
      list_query.txt       (paths under test/)                        11,659 lines
      list_gallery.txt                                                82,161 lines
    MSMT17_V2/             the same with train/ -> mask_train_v2/, test/ -> mask_test_v2/

The list files are the protocol: `<pid folder>/<file name> <person id>`. File names are
`PPPP_III_CC_DDDDtime_SSSS_K.jpg`: person id, image index, camera 01..15, date and time
of day, ... The camera comes from the third field (1-based in the name, 0-based here).
Training and test ids are numbered separately (both from 0) and are different people.

`train` is list_train + list_val by default (the 32,621-image / 1,041-id training set of
the paper and of torchreid's statistics; torchreid's code itself adds list_val only
with `combineall`); `include_val=False` gives list_train alone (30,248 images).

Statistics: train 32,621 images / 1,041 ids; query 11,659 / 3,060; gallery 82,161 /
3,060; 15 cameras.
"""

from __future__ import annotations

import re
from pathlib import Path

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.records import (REASON_BAD_FILENAME, REASON_MISSING, ReadResult, Record, Skipped, layout_error,
                                    require_dir, require_file)

NAME = "msmt17"
VERSIONS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}
NAME_PATTERN = re.compile(r"(?P<pid>\d{4})_\d{3}_(?P<cam>\d{2})_\d{4}(morning|noon|afternoon)_\d{4}_\d+\.jpg")
NUM_CAMERAS = 15

EXPECTED_TREE = """\
<root>/                  (or <root>/MSMT17_V1/ ; MSMT17_V2 uses mask_train_v2/, mask_test_v2/)
  train/                 0000/0000_000_01_0303morning_0015_0.jpg ...
  test/                  0000/0000_000_01_0303morning_0036_0.jpg ...
  list_train.txt         0000/0000_000_01_0303morning_0015_0.jpg 0
  list_val.txt
  list_query.txt
  list_gallery.txt
"""


def _find(root: Path) -> tuple[Path, str, str]:
    if not root.exists():
        raise layout_error(root, EXPECTED_TREE, "dataset root")
    for candidate in [root] + [root / v for v in VERSIONS]:
        for version, (train_dir, test_dir) in VERSIONS.items():
            if (candidate / train_dir).is_dir() and (candidate / "list_train.txt").exists():
                return candidate, train_dir, test_dir
    raise layout_error(f"{root}/train (or {root}/MSMT17_V1/train, {root}/MSMT17_V2/mask_train_v2)",
                       EXPECTED_TREE)


def _read_list(list_path: Path, image_dir: Path, data_dir: Path) -> tuple[list[Record], list[Skipped]]:
    records, skipped = [], []
    prefix = image_dir.name
    for number, line in enumerate(list_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{prefix}/{fields[0]}" if fields else f"{list_path.name}:{number}"
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            skipped.append(Skipped(where, f"{REASON_BAD_FILENAME}: {list_path.name}:{number}: expected "
                                          f"'<folder>/<file>.jpg <person id>', got {line!r}"))
            continue
        rel, pid = fields[0], int(fields[1])
        match = NAME_PATTERN.fullmatch(Path(rel).name)
        if match is None:
            skipped.append(Skipped(where, f"{REASON_BAD_FILENAME}: expected {NAME_PATTERN.pattern}"))
            continue
        cam = int(match["cam"])
        if not 1 <= cam <= NUM_CAMERAS:
            skipped.append(Skipped(where, f"{REASON_BAD_FILENAME}: camera {cam} outside 01..{NUM_CAMERAS}"))
            continue
        path = image_dir / rel
        if not path.is_file():
            skipped.append(Skipped(where, f"{REASON_MISSING}: listed in {list_path.name}:{number}"))
            continue
        records.append(Record(relpath=where, person_id=pid, camera_id=cam - 1, dataset=NAME,
                              path=str(path.absolute())))
    return records, skipped


def read(root: Path, include_val: bool = True) -> ReadResult:
    """Reads MSMT17 from its list files (see the module docstring).

    Args:
        root: `MSMT17_V1/` (or V2) or the folder that holds it.
        include_val: add list_val.txt to the training split.
    """
    data_dir, train_name, test_name = _find(Path(root))
    train_dir = require_dir(data_dir / train_name, EXPECTED_TREE)
    test_dir = require_dir(data_dir / test_name, EXPECTED_TREE)
    lists = {name: require_file(data_dir / f"list_{name}.txt", EXPECTED_TREE)
             for name in ("train", "val", "query", "gallery")}
    skipped: list[Skipped] = []
    parts = {}
    for name, image_dir in (("train", train_dir), ("val", train_dir), ("query", test_dir), ("gallery", test_dir)):
        parts[name], bad = _read_list(lists[name], image_dir, data_dir)
        skipped.extend(bad)
    train = parts["train"] + (parts["val"] if include_val else [])
    info = {"version": data_dir.name if data_dir.name in VERSIONS else train_name, "num_cameras": NUM_CAMERAS,
            "include_val": include_val, "num_val_images": len(parts["val"])}
    return ReadResult(splits={"train": train, "query": parts["query"], "gallery": parts["gallery"]},
                      skipped=skipped, info=info)


CITATION = """\
@inproceedings{wei2018person,
  title     = {Person Transfer GAN to Bridge Domain Gap for Person Re-Identification},
  author    = {Wei, Longhui and Zhang, Shiliang and Gao, Wen and Tian, Qi},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2018}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="https://www.pkuvmc.com/dataset.html",
    reference="Wei et al., Person Transfer GAN to Bridge Domain Gap for Person Re-Identification, CVPR 2018",
    citation=CITATION,
)
