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

import zlib
from pathlib import Path

import numpy as np

from spreid_tf.data.records import (REASON_CORRUPT, REASON_MASK, REASON_MISSING,
                                    REASON_ZERO_BYTE, ParsingRecord, ReadResult, Skipped, layout_error,
                                    relpath, require_dir, resolve_root, scan_images)
from spreid_tf.data.registry import DatasetInfo, register
from spreid_tf.data.synthetic import files, people
from spreid_tf.data.synthetic.stats import ExpectedStats, SplitStats

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


def write_miniature(root: Path, seed: int = 0) -> ExpectedStats:
    """Writes a miniature LIP under `root/LIP/`: 12 train and 5 val pairs of varied size.

    Bad pairs: a missing mask, a mask of the wrong size, a mask with label 42, a
    corrupt and a zero-byte image, an id listed without an image.
    """
    base = zlib.crc32(NAME.encode()) % 100_000 + seed * 1_000_003
    rng = np.random.default_rng([seed, 7])
    data = Path(root) / "LIP"
    image_base = data / "TrainVal_images"
    mask_base = data / "TrainVal_parsing_annotations"
    counts = {"train": 12, "val": 5}
    ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        for k in range(counts[split]):
            image_id = f"{int(rng.integers(1, 200000))}_{int(rng.integers(100000, 600000))}"
            height = int(rng.integers(72, 120))
            width = int(rng.integers(40, 80))
            rgb, mask = people.render_person(people.make_identity(base + len(ids[split]) + 100 * (split == "val")),
                                             people.make_camera(seed * 31 + k), height, width,
                                             np.random.default_rng([seed, k]))
            files.write_image(image_base / f"{split}_images" / f"{image_id}.jpg", rgb)
            files.write_image(mask_base / f"{split}_segmentations" / f"{image_id}.png", mask)
            ids[split].append(image_id)

    def bad_pair(split: str, image_id: str, image: bytes | None, mask: np.ndarray | None) -> None:
        if image is not None:
            files.write_bytes(image_base / f"{split}_images" / f"{image_id}.jpg", image)
        if mask is not None:
            files.write_image(mask_base / f"{split}_segmentations" / f"{image_id}.png", mask)
        ids[split].append(image_id)

    good_rgb, good_mask = people.render(base + 999, 1, 1, 96, 64)
    jpeg = files.encode(good_rgb, ".jpg")
    bad_pair("train", "9001_100001", jpeg, None)
    bad_pair("train", "9002_100002", jpeg, good_mask[:90])
    bad_pair("train", "9003_100003", jpeg, np.where(good_mask == 5, 42, good_mask).astype(np.uint8))
    bad_pair("val", "9004_100004", jpeg[: len(jpeg) // 3], good_mask)
    bad_pair("val", "9005_100005", b"", good_mask)
    bad_pair("val", "9006_100006", None, good_mask)
    files.write_thumbs_db(image_base / "train_images" / "Thumbs.db")  # not listed: never seen
    for split in SPLITS:
        (image_base / f"{split}_id.txt").write_text("\n".join(ids[split]) + "\n")
    skipped = {
        "TrainVal_images/train_images/9001_100001.jpg": REASON_MISSING,
        "TrainVal_images/train_images/9002_100002.jpg": REASON_MASK,
        "TrainVal_images/train_images/9003_100003.jpg": REASON_MASK,
        "TrainVal_images/val_images/9004_100004.jpg": REASON_CORRUPT,
        "TrainVal_images/val_images/9005_100005.jpg": REASON_ZERO_BYTE,
        "TrainVal_images/val_images/9006_100006.jpg": REASON_MISSING,
    }
    return ExpectedStats(
        splits={split: SplitStats(num_images=counts[split], num_ids=0, num_cameras=0) for split in SPLITS},
        skipped=skipped, info={"id_lists": {"train": True, "val": True}})


INFO = register(DatasetInfo(
    name=NAME,
    read=read,
    expected_tree=EXPECTED_TREE,
    write_miniature=write_miniature,
    url="http://sysu-hcp.net/lip/overview.php",
    reference="Gong et al., Look into Person: Self-supervised Structure-sensitive Learning and A New "
              "Benchmark for Human Parsing, CVPR 2017",
    kind="parsing",
    splits=SPLITS,
    train_split=None,
))
