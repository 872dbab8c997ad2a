"""3DPeS, the re-identification snapshots (Baltieri, Vezzani and Cucchiara, "3DPeS: 3D
People Dataset for Surveillance and Forensics", ACM MM workshop J-HGBU 2011).
Registered as "3dpes" (a module name cannot start with a digit).

URL: http://imagelab.ing.unimore.it/3DPeS/3dPES_data/3DPeS_ReId_Snap.zip (site offline
since ~2019; mirrors are linked from torchreid's and fast-reid's issues).

Raw layout (`root` is `3DPeS/` or the folder that holds it; the zip unpacks to
`3DPeS/`):

    3DPeS/
      RGB/    001_1_FRAME_1264_RGB.bmp 001_2_FRAME_402_RGB.bmp ...   1,011 images
      (other folders of the zip, e.g. silhouettes, are not read)

Filenames: `<person>_<camera>_FRAME_<frame>_RGB.bmp`. This is the rule torchreid's
pes3d.py parses (regex `^([0-9]+)_([0-9B_]+)_FRAME_[0-9]+_RGB\\.bmp`) and the one DGD's
format_3dpes.py splits (`name.split('_')[0:2]` = person, view); the zero padding of
the person number is not confirmed (this reader accepts any). The camera token may
carry a `B` suffix in some names (torchreid's regex allows `[0-9B_]`): the camera
is its leading number (1-8), camera id = number - 1. The raw data could not be
checked here (no download): this is the layout most code uses.

Statistics: 192 ids, 1,011 images, 8 cameras (each person seen by 2 or more).

Protocol (`split`): "standard": half of the ids train (96), half test, random split
`split_index` of 10 (seeded with `seed`); for each test id one random image is the
query and its other images the gallery (torchreid's pes3d protocol; the evaluation's
same-camera rule leaves the other cameras' images as the matches). DGD instead
tested on 100 ids. "all": every image in train.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.readers import _protocols
from spreid_tf.data.records import (REASON_BAD_FILENAME, ReadResult, Record, Skipped, relpath, require_dir,
                                    resolve_root, scan_images)

NAME = "3dpes"
DIRNAMES = ("3DPeS", "3dpes")
NUM_CAMERAS = 8
PATTERN = re.compile(r"(?P<pid>\d+)_(?P<view>[0-9B_]+?)_FRAME_(?P<frame>\d+)_RGB\.bmp", re.IGNORECASE)

EXPECTED_TREE = """\
<root>/                     (or <root>/3DPeS/)
  RGB/  001_1_FRAME_1264_RGB.bmp ...   <person>_<camera>_FRAME_<frame>_RGB.bmp
"""


def read(root: Path, split: str = "standard", split_index: int = 0, seed: int = 0) -> ReadResult:
    """Reads 3DPeS (see the module docstring for the layout and the protocol)."""
    _protocols.check_split_options(NAME, split, split_index, _protocols.NUM_RANDOM_SPLITS)
    data_dir = resolve_root(root, DIRNAMES, "RGB", EXPECTED_TREE)
    rgb = require_dir(data_dir / "RGB", EXPECTED_TREE)
    images, skipped = scan_images(rgb, data_dir, (".bmp",))
    records: list[Record] = []
    for path in images:
        rel = relpath(path, data_dir)
        match = PATTERN.fullmatch(path.name)
        camera = re.match(r"\d+", match["view"]) if match else None
        if match is None or camera is None:
            skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: expected <person>_<camera>_FRAME_<frame>_RGB.bmp"))
            continue
        if not 1 <= int(camera[0]) <= NUM_CAMERAS:
            skipped.append(Skipped(rel, f"{REASON_BAD_FILENAME}: camera {camera[0]} outside 1-{NUM_CAMERAS}"))
            continue
        records.append(Record(relpath=rel, person_id=int(match["pid"]), camera_id=int(camera[0]) - 1,
                              dataset=NAME, path=str(path.absolute())))
    info: dict = {"split": split, "num_cameras": NUM_CAMERAS, "camera_id": "camera number in the name - 1"}
    if split == "all":
        return ReadResult(splits=_protocols.all_in_train(records), skipped=skipped, info=info)
    ids = sorted({r.person_id for r in records})
    splits = _protocols.random_id_splits(ids, len(ids) // 2, seed)
    chosen = splits[split_index]
    queries = choose_queries(records, chosen["test"], seed, split_index)
    info.update({"split_index": split_index, "seed": seed, "num_splits": len(splits), "splits": splits,
                 "query_images": sorted(queries)})
    test = set(chosen["test"])
    return ReadResult(
        splits={"train": _protocols.by_ids(records, chosen["train"]),
                "query": [r for r in records if r.relpath in queries],
                "gallery": [r for r in records if r.person_id in test and r.relpath not in queries]},
        skipped=skipped, info=info)


def choose_queries(records: list[Record], test_ids: list[int], seed: int, split_index: int) -> set[str]:
    """One query image per test id (relpaths), drawn with default_rng([seed, split_index])."""
    rng = np.random.default_rng([seed, split_index])
    by_id: dict[int, list[str]] = {}
    for r in records:
        by_id.setdefault(r.person_id, []).append(r.relpath)
    return {sorted(by_id[pid])[rng.integers(len(by_id[pid]))] for pid in sorted(test_ids) if pid in by_id}


CITATION = """\
@inproceedings{baltieri20113dpes,
  title     = {3DPeS: 3D People Dataset for Surveillance and Forensics},
  author    = {Baltieri, Davide and Vezzani, Roberto and Cucchiara, Rita},
  booktitle = {Joint ACM Workshop on Human Gesture and Behavior Understanding (J-HGBU)},
  year      = {2011}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="http://imagelab.ing.unimore.it/3DPeS/3dPES_data/3DPeS_ReId_Snap.zip",
    reference="Baltieri, Vezzani and Cucchiara, 3DPeS: 3D People Dataset for Surveillance and Forensics, "
              "J-HGBU 2011",
    citation=CITATION,
    merge_options={"split": "all"},
)
