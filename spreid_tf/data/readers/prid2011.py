"""PRID2011, single-shot version (Hirzer et al., "Person Re-Identification by
Descriptive and Discriminative Classification", SCIA 2011).

URL: https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/PRID11/
(`prid_2011.zip`).

Raw layout (`root` is `prid_2011/` or the folder that holds it; torchreid's
`prid2011/` holds `prid_2011/`):

    prid_2011/
      single_shot/
        cam_a/  person_0001.png ... person_0385.png    385 ids, 128x64
        cam_b/  person_0001.png ... person_0749.png    749 ids
      multi_shot/                                      (not read)

Filenames: `person_NNNN.png`, one image per person per camera; persons 0001-0200
appear in both cameras, 0201-0385 only in cam_a, 0201-0749 only in cam_b. The two
cameras' numbers above 200 are different people (nothing on disk says which numbers
are shared: 200 is the dataset's documented fact, as torchreid hard-codes it), so
they are kept apart as person ids NNNN (cam_a) and 10000 + NNNN (cam_b); numbers up
to 200 are the person id in both cameras. Cameras: cam_a = 0, cam_b = 1.
`Thumbs.db`: not an image; other names: bad filename.

Statistics: 934 ids (200 in both cameras), 1,134 images, 2 cameras.

Protocol (`split`), torchreid's: "standard": the persons in both cameras (200) are
split in half at random, split `split_index` of 10 (seeded with `seed`): train = both
images of the 100 train ids; query = cam_a images of the 100 test ids; gallery =
their cam_b images plus every cam_b-only person (549 distractors, so the gallery has
649 images). cam_a-only persons are not used (counted in info). "all": every image
in train (934 ids).
"""

from __future__ import annotations

import re
from pathlib import Path

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.readers import _protocols
from spreid_tf.data.records import (REASON_BAD_FILENAME, ReadResult, Record, Skipped, relpath, require_dir,
                                    resolve_root, scan_images)

NAME = "prid2011"
DIRNAMES = ("prid_2011", "prid2011")
CAMERAS = ("cam_a", "cam_b")
CAM_B_ONLY_OFFSET = 10000
NUM_SHARED = 200  # persons 1-200 are seen by both cameras
PATTERN = re.compile(r"person_(?P<number>\d{4})\.png")

EXPECTED_TREE = """\
<root>/                        (or <root>/prid_2011/)
  single_shot/
    cam_a/  person_0001.png ... person_0385.png
    cam_b/  person_0001.png ... person_0749.png
"""


def read(root: Path, split: str = "standard", split_index: int = 0, seed: int = 0) -> ReadResult:
    """Reads PRID2011 single-shot (see the module docstring for the layout and the protocol)."""
    _protocols.check_split_options(NAME, split, split_index, _protocols.NUM_RANDOM_SPLITS)
    data_dir = resolve_root(root, DIRNAMES, "single_shot", EXPECTED_TREE)
    dirs = [require_dir(data_dir / "single_shot" / cam, EXPECTED_TREE) for cam in CAMERAS]
    skipped: list[Skipped] = []
    numbers: list[dict[int, Path]] = []
    for directory in dirs:
        images, others = scan_images(directory, data_dir, (".png",))
        skipped.extend(others)
        found = {}
        for path in images:
            match = PATTERN.fullmatch(path.name)
            if match is None:
                skipped.append(Skipped(relpath(path, data_dir),
                                       f"{REASON_BAD_FILENAME}: expected person_NNNN.png, e.g. person_0001.png"))
                continue
            found[int(match["number"])] = path
        numbers.append(found)
    shared = sorted(n for n in set(numbers[0]) & set(numbers[1]) if n <= NUM_SHARED)

    def record(number: int, cam: int) -> Record:
        pid = number if number <= NUM_SHARED or cam == 0 else CAM_B_ONLY_OFFSET + number
        path = numbers[cam][number]
        return Record(relpath=relpath(path, data_dir), person_id=pid, camera_id=cam, dataset=NAME,
                      path=str(path.absolute()))

    a_only = sorted(set(numbers[0]) - set(shared))
    b_only = sorted(set(numbers[1]) - set(shared))
    info: dict = {"split": split, "num_cameras": 2, "num_shared_ids": len(shared),
                  "num_cam_a_only_ids": len(a_only), "num_cam_b_only_ids": len(b_only),
                  "person_id": f"number in both cameras or cam_a only; {CAM_B_ONLY_OFFSET} + number if cam_b only",
                  "camera_id": "0 = cam_a, 1 = cam_b"}
    if split == "all":
        records = [record(n, 0) for n in sorted(numbers[0])] + [record(n, 1) for n in sorted(numbers[1])]
        return ReadResult(splits=_protocols.all_in_train(records), skipped=skipped, info=info)
    splits = _protocols.random_id_splits(shared, len(shared) // 2, seed)
    chosen = splits[split_index]
    info.update({"split_index": split_index, "seed": seed, "num_splits": len(splits), "splits": splits,
                 "num_unused_cam_a_only": len(a_only), "num_gallery_distractors": len(b_only)})
    return ReadResult(
        splits={"train": [record(n, cam) for n in chosen["train"] for cam in (0, 1)],
                "query": [record(n, 0) for n in chosen["test"]],
                "gallery": [record(n, 1) for n in chosen["test"]] + [record(n, 1) for n in b_only]},
        skipped=skipped, info=info)


CITATION = """\
@inproceedings{hirzer2011person,
  title     = {Person Re-Identification by Descriptive and Discriminative Classification},
  author    = {Hirzer, Martin and Beleznai, Csaba and Roth, Peter M. and Bischof, Horst},
  booktitle = {Scandinavian Conference on Image Analysis (SCIA)},
  year      = {2011}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/PRID11/",
    reference="Hirzer et al., Person Re-Identification by Descriptive and Discriminative Classification, "
              "SCIA 2011",
    citation=CITATION,
    merge_options={"split": "all"},
)
