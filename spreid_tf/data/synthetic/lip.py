"""A miniature LIP (the layout `spreid_tf.data.readers.lip` reads): images and parsing masks."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from spreid_tf.data.readers.lip import NAME, SPLITS
from spreid_tf.data.records import REASON_CORRUPT, REASON_MASK, REASON_MISSING, REASON_ZERO_BYTE
from spreid_tf.data.synthetic import files, people
from spreid_tf.data.synthetic.stats import ExpectedStats, SplitStats


def write(root: Path, seed: int = 0) -> ExpectedStats:
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
