"""LIP, Look Into Person (Gong et al., "Look into Person: Self-supervised
Structure-sensitive Learning and A New Benchmark for Human Parsing", CVPR 2017).

URL: http://sysu-hcp.net/lip/overview.php (single-person `TrainVal_images.zip`,
`TrainVal_parsing_annotations.zip`).

Raw layout (`root` is `LIP/` or the folder that holds it; each zip may unpack into a
doubled folder, e.g. `TrainVal_images/TrainVal_images/`, which is accepted too):

    LIP/
      TrainVal_images/
        train_images/        77_471474.jpg ...      30,462 images
        val_images/          100034_483681.jpg ...  10,000 images
        train_id.txt         77_471474 ...          (one id a line; optional)
        val_id.txt
      TrainVal_parsing_annotations/
        train_segmentations/ 77_471474.png ...      single-channel PNG, labels 0-19
        val_segmentations/   100034_483681.png ...

Masks hold the 20 LIP labels (spreid_tf.lip.LABEL_NAMES) and must have the image's
size. The id lists, when present, define the splits (torchreid-style parsers read
them); otherwise every image in the folder counts. An image without a mask, a mask of
another size, or labels outside 0-19 (255 = ignore is allowed) is skipped with a reason.

Statistics: train 30,462 pairs; val 10,000 pairs (test images have no masks and are
not converted).
"""

from __future__ import annotations

from pathlib import Path

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.records import (REASON_MISSING, ParsingRecord, ReadResult, Skipped, layout_error, relpath,
                                    require_dir, resolve_root, scan_images)

NAME = "lip"
DIRNAMES = ("LIP", "lip")
SPLITS = ("train", "val")

EXPECTED_TREE = """\
<root>/                          (or <root>/LIP/)
  TrainVal_images/
    train_images/                77_471474.jpg ...
    val_images/                  100034_483681.jpg ...
    train_id.txt, val_id.txt     (optional)
  TrainVal_parsing_annotations/
    train_segmentations/         77_471474.png ...
    val_segmentations/           100034_483681.png ...
"""


def _nested(base: Path, marker: str) -> Path:
    """`base` or `base/<base.name>` (a doubly unpacked zip), whichever holds `marker`."""
    for candidate in (base, base / base.name):
        if (candidate / marker).is_dir():
            return candidate
    raise layout_error(f"{base / marker} (or {base / base.name / marker})", EXPECTED_TREE)


def read(root: Path) -> ReadResult:
    """Reads LIP's train/val (image, mask) pairs (see the module docstring)."""
    data_dir = resolve_root(root, DIRNAMES, "TrainVal_images", EXPECTED_TREE)
    image_base = _nested(require_dir(data_dir / "TrainVal_images", EXPECTED_TREE), "train_images")
    mask_base = _nested(require_dir(data_dir / "TrainVal_parsing_annotations", EXPECTED_TREE),
                        "train_segmentations")
    splits: dict[str, list[ParsingRecord]] = {}
    skipped: list[Skipped] = []
    id_lists: dict[str, bool] = {}
    for split in SPLITS:
        image_dir = require_dir(image_base / f"{split}_images", EXPECTED_TREE)
        mask_dir = require_dir(mask_base / f"{split}_segmentations", EXPECTED_TREE)
        list_path = next((p for p in (image_base / f"{split}_id.txt", data_dir / f"{split}_id.txt")
                          if p.is_file()), None)
        id_lists[split] = list_path is not None
        if list_path is not None:
            ids = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
            images = [image_dir / f"{i}.jpg" for i in ids]
        else:
            images, others = scan_images(image_dir, image_base, (".jpg",))
            skipped.extend(Skipped("TrainVal_images/" + o.relpath, o.reason) for o in others)
        records = []
        for image in images:
            # Canonical relpaths, whether or not a zip unpacked into a doubled folder.
            rel = "TrainVal_images/" + relpath(image, image_base)
            mask = mask_dir / f"{image.stem}.png"
            mask_rel = "TrainVal_parsing_annotations/" + relpath(mask, mask_base)
            if not image.is_file():
                skipped.append(Skipped(rel, f"{REASON_MISSING}: listed in {split}_id.txt"))
            elif not mask.is_file():
                skipped.append(Skipped(rel, f"{REASON_MISSING}: no mask {mask_rel}"))
            else:
                records.append(ParsingRecord(relpath=rel, path=str(image.absolute()),
                                             mask_relpath=mask_rel,
                                             mask_path=str(mask.absolute()), dataset=NAME))
        splits[split] = records
    info = {"num_classes": 20, "id_lists": id_lists, "mask_format": "single-channel PNG, labels 0-19"}
    return ReadResult(splits=splits, skipped=skipped, info=info)


CITATION = """\
@inproceedings{gong2017look,
  title     = {Look into Person: Self-supervised Structure-sensitive Learning and A New Benchmark for Human Parsing},
  author    = {Gong, Ke and Liang, Xiaodan and Zhang, Dongyu and Shen, Xiaohui and Lin, Liang},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2017}
}
"""


INFO = DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    url="http://sysu-hcp.net/lip/overview.php",
    reference="Gong et al., Look into Person: Self-supervised Structure-sensitive Learning and A New "
              "Benchmark for Human Parsing, CVPR 2017",
    citation=CITATION,
    kind="parsing",
    splits=SPLITS,
    train_split=None,
)
