"""Synthetic people whose identity is the body-part layout of a shared palette.

Every identity wears colours from one small palette on four parts, and people differ
only in WHICH colour each part wears. What tells two people of one *outfit group*
apart is the colour of their small parts (cap and shoes): a few percent of the
image, which global average pooling dilutes among the clothes and the background,
and which SPReID's part maps pool on their own (l1-normalised: a cap counts as much
as a shirt). Across groups many pairs carry the same colours on different parts
(A = red top / blue pants / green cap and shoes, B = green top / blue pants / red
cap and shoes).

Palette and parts:

- PALETTE: six saturated colours, hues 60 degrees apart (red, yellow, green, cyan,
  blue, magenta), shared by all parts.
- PARTS: head (a cap; the hair under it is a fixed dark brown), upper clothes, lower
  clothes (long pants) and shoes.
- TEXTURES: the clothes are plain, or striped with a darker shade of their own colour
  (so a texture adds no hue of its own), on the upper and the lower clothes alike.

Everything else is the same for everybody: skin, hair, body shape, short sleeves, long
pants, no sunglasses and no bag (a bag would hide parts and carry a colour).

Outfit groups: a group is an outfit, (upper, lower) colours with upper != lower and a
texture (6 x 5 x 2 = 60 groups). Its GROUP_SIZE = 4 members wear the four palette
colours the outfit does not use as their *accent*, on the cap and on the shoes:

    member 0: top red, pants blue, cap and shoes yellow
    member 1: top red, pants blue, cap and shoes green
    member 2: top red, pants blue, cap and shoes cyan
    member 3: top red, pants blue, cap and shoes magenta

Identity `index` is member `index % 4` of group `index // 4`; `seed` shuffles the
group order. MAX_IDENTITIES = 240 identities in all.

    identity = make_part_layout_identity(5)          # a people.Identity
    info = write_part_layout_market("/tmp/pl", num_train_ids=100, images_per_train_id=8,
                                    num_test_ids=100, gallery_per_test_id=4,
                                    num_distractors=20, masks_dir="/tmp/pl_masks")
    convert_dataset("market1501", "/tmp/pl", "/tmp/records", overwrite=True)

The converter stores `image/filename` as the path relative to `Market-1501-v15.09.15/`
(e.g. "query/0101_c2s1_000401_00.jpg"); `read_masks` accepts that or the bare basename.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Iterable

import cv2
import numpy as np

from spreid_tf.data.readers import market1501
from spreid_tf.data.readers._bounding_box import SPLIT_DIRS
from spreid_tf.data.synthetic import files, people

# Hues 0, 60, ..., 300 degrees: as far apart as six colours can be.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "yellow": (225, 205, 35),
    "green": (35, 180, 55),
    "cyan": (35, 190, 210),
    "blue": (45, 70, 220),
    "magenta": (200, 45, 200),
}
COLOURS: tuple[str, ...] = tuple(PALETTE)
PARTS: tuple[str, ...] = ("head", "upper", "lower", "shoes")
TEXTURES: tuple[str, ...] = ("plain", "stripes")
GROUP_SIZE = 4

# Shared by every identity, so that none of these identifies anybody.
_SKIN = np.array([234, 192, 160], np.float32)
_HAIR = np.array([70, 45, 25], np.float32)
# Stripes alternate a colour with this darker shade of it; people.render_person stripes
# lower clothes with shade 0.6 (period + 1), so the upper ones use the same shade.
_STRIPE_SHADE = 0.6
_STRIPE_PERIOD = 4
# Upper clothes with short sleeves cover about as many pixels as long pants at this width.
_WIDTH_FACTOR = 0.68
_HEIGHT_FACTOR = 0.96

# The Market-1501 folders (train, query, gallery) and the archive's top folder.
DATA_DIRNAME = market1501.DIRNAMES[0]
SPLIT_FOLDERS: dict[str, str] = dict(SPLIT_DIRS)


@dataclasses.dataclass(frozen=True)
class PartLayout:
    """Which palette colour each part of an identity wears.

    Attributes:
        head, upper, lower, shoes: palette colour names (keys of PALETTE).
        texture: the texture of upper and lower clothes, one of TEXTURES.
        group: index of the identity's outfit group (identity index // 4).
        member: position in the group (identity index % 4).
    """

    head: str
    upper: str
    lower: str
    shoes: str
    texture: str
    group: int
    member: int

    @property
    def colours(self) -> tuple[str, str, str, str]:
        """(head, upper, lower, shoes) colours, in PARTS order."""
        return (self.head, self.upper, self.lower, self.shoes)


@functools.lru_cache(maxsize=16)
def _groups(seed: int) -> tuple[tuple[int, int, str], ...]:
    """All outfit groups (upper colour, lower colour, texture) in identity order for `seed`."""
    outfits = [(u, lo, texture) for u, lo in itertools.permutations(range(len(COLOURS)), 2) for texture in TEXTURES]
    rng = np.random.default_rng([seed, 7])
    return tuple(outfits[i] for i in rng.permutation(len(outfits)))


MAX_IDENTITIES: int = GROUP_SIZE * len(_groups(0))


def part_layout(index: int, seed: int = 0) -> PartLayout:
    """The part colours of identity `index` (deterministic in index and seed).

    Raises:
        ValueError: index outside 0..MAX_IDENTITIES - 1.
    """
    if not 0 <= index < MAX_IDENTITIES:
        raise ValueError(f"identity index {index} outside 0..{MAX_IDENTITIES - 1} "
                         f"(the palette scheme has {MAX_IDENTITIES} identities)")
    group, member = divmod(index, GROUP_SIZE)
    u, lo, texture = _groups(seed)[group]
    accent = [c for c in range(len(COLOURS)) if c not in (u, lo)][member]
    return PartLayout(COLOURS[accent], COLOURS[u], COLOURS[lo], COLOURS[accent], texture, group, member)


def _rgb(name: str) -> np.ndarray:
    return np.array(PALETTE[name], np.float32)


def make_part_layout_identity(index: int, seed: int = 0) -> people.Identity:
    """The people.Identity of identity `index` (see part_layout and the module docstring)."""
    layout = part_layout(index, seed)
    upper = _rgb(layout.upper)
    return people.Identity(
        skin=_SKIN, hair=_HAIR, long_hair=False,
        upper=upper, upper2=upper * _STRIPE_SHADE, upper_pattern=layout.texture,
        pattern_period=_STRIPE_PERIOD, long_sleeves=False,
        lower=_rgb(layout.lower), lower_kind="pants", lower_pattern=layout.texture,
        shoes=_rgb(layout.shoes), hat=_rgb(layout.head), sunglasses=False, bag=None,
        width_factor=_WIDTH_FACTOR, height_factor=_HEIGHT_FACTOR,
    )


def camera(cam: int, seed: int = 0) -> people.Camera:
    """Camera `cam` (1-based) of the benchmark of `seed`: light, background, scale, shift."""
    return people.make_camera(1_000 * seed + 900 + cam)


def render(index: int, cam: int, image_seed: int, seed: int = 0, height: int = 128,
           width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One image of identity `index` seen by camera `cam`: (rgb uint8, LIP mask uint8).

    `image_seed` varies pose, shift, lighting jitter and noise between images.
    """
    rng = np.random.default_rng([seed, 3, index, cam, image_seed])
    return people.render_person(make_part_layout_identity(index, seed), camera(cam, seed), height, width, rng)


def _first_of_next_group(n: int) -> int:
    return -(-n // GROUP_SIZE) * GROUP_SIZE


def write_part_layout_market(root: os.PathLike | str, *, num_train_ids: int, images_per_train_id: int,
                             num_test_ids: int, gallery_per_test_id: int, num_distractors: int,
                             seed: int = 0, height: int = 128, width: int = 64, num_cameras: int = 6,
                             masks_dir: os.PathLike | str | None = None, overwrite: bool = False) -> dict:
    """Writes the part-layout benchmark as a Market-1501 tree under `root`.

    Train identities are indices 0..num_train_ids-1 (pids 1..num_train_ids); test
    identities start at the next group boundary, so they are whole outfit groups
    (pids num_train_ids+1..num_train_ids+num_test_ids); each distractor (pid 0000) is
    another identity, from groups after the test ones. Each test id has one query from
    camera `1 + i % num_cameras`, one gallery image from that camera (which the protocol
    excludes) and `gallery_per_test_id` from the other cameras in turn. Every image has
    its own frame number.

    Args:
        root: the reader's root; images go to `root/Market-1501-v15.09.15/<split folder>/`.
        num_train_ids, images_per_train_id: training identities and images of each.
        num_test_ids: identities in query and gallery.
        gallery_per_test_id: gallery images of each test id from cameras other than
            its query's.
        num_distractors: gallery images of pid 0000 (one per distractor identity).
        seed: shuffles the group order and seeds cameras and poses.
        height, width: image size.
        num_cameras: cameras c1..c<num_cameras> (2 to 6, Market's name rule).
        masks_dir: if given, each image's LIP mask is written as
            `masks_dir/<split folder>/<image stem>.png`.
        overwrite: delete split folders left by an earlier run first (otherwise such
            folders are an error, as their stale files would join the benchmark).

    Returns:
        {"root", "data_dir", "masks_dir" (str or None), "num_train_images",
        "num_train_ids", "num_query", "num_query_ids", "num_gallery" (distractors
        included), "num_gallery_ids" (the distractor pid 0 counts as one),
        "num_distractors", "num_cameras", "seed", "pid_to_identity" (pid -> identity
        index for train and test pids)}.

    Raises:
        ValueError: bad counts, or more identities or pids than the scheme has.
        FileExistsError: a split folder exists and overwrite is False.
    """
    if min(num_train_ids, images_per_train_id, num_test_ids, gallery_per_test_id) < 1 or num_distractors < 0:
        raise ValueError("need num_train_ids, images_per_train_id, num_test_ids, gallery_per_test_id >= 1 "
                         "and num_distractors >= 0")
    if not 2 <= num_cameras <= market1501.NUM_CAMERAS:
        raise ValueError(f"num_cameras must be 2..{market1501.NUM_CAMERAS}, got {num_cameras}")
    if num_train_ids + num_test_ids > 9999:
        raise ValueError("Market-1501 pids have 4 digits: at most 9999 train + test ids")
    num_images = num_train_ids * images_per_train_id + num_test_ids * (2 + gallery_per_test_id) + num_distractors
    if num_images > 999_999:
        raise ValueError(f"{num_images} images: Market-1501 frame numbers have 6 digits")
    test_start = _first_of_next_group(num_train_ids)
    distractor_start = _first_of_next_group(test_start + num_test_ids)
    if distractor_start + num_distractors > MAX_IDENTITIES:
        raise ValueError(f"needs {distractor_start + num_distractors} identities (groups are kept whole); "
                         f"the palette scheme has {MAX_IDENTITIES}")

    root = Path(root)
    data_dir = root / DATA_DIRNAME
    mask_root = Path(masks_dir) if masks_dir is not None else None
    targets = [data_dir / d for d in SPLIT_FOLDERS.values()]
    targets += [mask_root / d for d in SPLIT_FOLDERS.values()] if mask_root is not None else []
    for target in targets:
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
            shutil.rmtree(target)
    for target in targets:
        target.mkdir(parents=True)

    frame = 0

    def write(folder: str, pid: int, index: int, cam: int, box: int) -> None:
        nonlocal frame
        frame += 1  # unique over the whole tree, as real frame numbers of one sequence
        rgb, mask = render(index, cam, frame, seed, height, width)
        name = f"{pid:04d}_c{cam}s1_{frame:06d}_{box:02d}.jpg"
        files.write_image(data_dir / folder / name, rgb)
        if mask_root is not None:
            files.write_image(mask_root / folder / (Path(name).stem + ".png"), mask)

    pid_to_identity: dict[int, int] = {}
    for i in range(num_train_ids):
        pid_to_identity[1 + i] = i
        for k in range(images_per_train_id):
            write(SPLIT_FOLDERS["train"], 1 + i, i, 1 + (i + k) % num_cameras, 1)
    for i in range(num_test_ids):
        pid, index = num_train_ids + 1 + i, test_start + i
        pid_to_identity[pid] = index
        qcam = 1 + i % num_cameras
        write(SPLIT_FOLDERS["query"], pid, index, qcam, 0)
        write(SPLIT_FOLDERS["gallery"], pid, index, qcam, 1)
        for j in range(gallery_per_test_id):
            write(SPLIT_FOLDERS["gallery"], pid, index, 1 + (qcam + j % (num_cameras - 1)) % num_cameras, 1)
    for d in range(num_distractors):
        write(SPLIT_FOLDERS["gallery"], 0, distractor_start + d, 1 + d % num_cameras, 1)

    return {
        "root": str(root),
        "data_dir": str(data_dir),
        "masks_dir": str(mask_root) if mask_root is not None else None,
        "num_train_images": num_train_ids * images_per_train_id,
        "num_train_ids": num_train_ids,
        "num_query": num_test_ids,
        "num_query_ids": num_test_ids,
        "num_gallery": num_test_ids * (1 + gallery_per_test_id) + num_distractors,
        "num_gallery_ids": num_test_ids + (num_distractors > 0),
        "num_distractors": num_distractors,
        "num_cameras": num_cameras,
        "seed": seed,
        "pid_to_identity": pid_to_identity,
    }


def read_masks(masks_dir: os.PathLike | str, split_folder: str, filenames: Iterable[str | bytes]) -> np.ndarray:
    """Loads the LIP masks of images of one split, in the order of `filenames`.

    Args:
        masks_dir: the `masks_dir` given to write_part_layout_market.
        split_folder: "bounding_box_train", "query" or "bounding_box_test" (the split
            names "train", "query", "gallery" are accepted too).
        filenames: image names as the converter stores them in `image/filename`
            ("query/0101_c2s1_000401_00.jpg", str or bytes) or bare basenames.

    Returns:
        uint8 array (N, H, W) of LIP labels.

    Raises:
        FileNotFoundError: a mask is missing (the message names the image and the mask).
        ValueError: a filename from another split folder, or masks of different sizes.
    """
    folder = SPLIT_FOLDERS.get(split_folder, split_folder)
    masks = []
    for name in filenames:
        name = name.decode() if isinstance(name, bytes) else str(name)
        path = PurePosixPath(name.replace(os.sep, "/"))
        if path.parent.name and path.parent.name != folder:
            raise ValueError(f"{name!r} is not in split folder {folder!r}")
        mask_path = Path(masks_dir) / folder / (path.stem + ".png")
        if not mask_path.is_file():
            raise FileNotFoundError(f"no mask for image {name!r}: {mask_path} not found")
        mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        if mask is None or mask.ndim != 2 or mask.dtype != np.uint8:
            raise ValueError(f"{mask_path}: not a single-channel 8-bit mask")
        if masks and mask.shape != masks[0].shape:
            raise ValueError(f"{mask_path}: size {mask.shape} differs from {masks[0].shape}")
        masks.append(mask)
    if not masks:
        return np.zeros((0, 0, 0), np.uint8)
    return np.stack(masks)
