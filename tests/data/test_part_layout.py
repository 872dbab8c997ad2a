"""The part-layout benchmark: outfit groups, why it needs part pooling, its Market-1501 tree."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tensorflow as tf

from spreid_tf import lip
from spreid_tf.data import manifest, schema
from spreid_tf.data.convert import convert_dataset
from spreid_tf.data.readers import market1501
from spreid_tf.data.synthetic import part_layout as pl

SIZES = dict(num_train_ids=6, images_per_train_id=3, num_test_ids=8, gallery_per_test_id=2, num_distractors=3)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A small benchmark with masks: (returned dict, tmp folder)."""
    tmp = tmp_path_factory.mktemp("part_layout")
    info = pl.write_part_layout_market(tmp / "raw", masks_dir=tmp / "masks", **SIZES)
    return info, tmp


def test_layouts_are_deterministic_and_seeded():
    assert [pl.part_layout(i) for i in range(12)] == [pl.part_layout(i, seed=0) for i in range(12)]
    assert [pl.part_layout(i, seed=1) for i in range(12)] != [pl.part_layout(i) for i in range(12)]
    a, b = pl.render(5, 2, 7), pl.render(5, 2, 7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="outside"):
        pl.part_layout(pl.MAX_IDENTITIES)


def test_written_tree_is_deterministic(written, tmp_path):
    info, tmp = written
    again = pl.write_part_layout_market(tmp_path / "raw", masks_dir=tmp_path / "masks", **SIZES)
    for first, second in ((tmp / "raw", tmp_path / "raw"), (tmp / "masks", tmp_path / "masks")):
        names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
        assert names == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
        assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)
    assert {k: v for k, v in again.items() if "dir" not in k and k != "root"} == \
        {k: v for k, v in info.items() if "dir" not in k and k != "root"}
    with pytest.raises(FileExistsError, match="overwrite"):
        pl.write_part_layout_market(tmp_path / "raw", **SIZES)


def test_groups_share_an_outfit_and_members_differ_by_their_accent():
    layouts = [pl.part_layout(i) for i in range(pl.MAX_IDENTITIES)]
    assert pl.MAX_IDENTITIES == 240
    assert len({(x.colours, x.texture) for x in layouts}) == pl.MAX_IDENTITIES
    assert {c for x in layouts for c in x.colours} == set(pl.PALETTE)
    for g in range(0, pl.MAX_IDENTITIES, pl.GROUP_SIZE):
        group = layouts[g:g + pl.GROUP_SIZE]
        assert len({(x.upper, x.lower, x.texture) for x in group}) == 1
        assert all(x.head == x.shoes and x.head not in (x.upper, x.lower) and x.upper != x.lower for x in group)
        assert len({x.head for x in group}) == pl.GROUP_SIZE
    # Across groups, many pairs wear the same colours on different parts: each set of three colours
    # is worn in all 3! assignments to (top, pants, cap and shoes): 20 sets x 15 pairs.
    by_colours = collections.defaultdict(set)
    for x in layouts:
        by_colours[frozenset(x.colours)].add(x.colours)
    assert sum(len(v) * (len(v) - 1) // 2 for v in by_colours.values()) == 300
    # Nothing but the part colours and the texture differs between identities.
    identities = [pl.make_part_layout_identity(i) for i in range(8)]
    for field in ("skin", "hair", "long_hair", "long_sleeves", "lower_kind", "sunglasses", "bag",
                  "width_factor", "height_factor", "pattern_period"):
        values = [getattr(x, field) for x in identities]
        assert all(np.array_equal(v, values[0]) for v in values), field


def test_test_set_is_whole_groups_disjoint_from_train(written):
    info, _ = written
    train_pids = range(1, SIZES["num_train_ids"] + 1)
    test_pids = range(SIZES["num_train_ids"] + 1, SIZES["num_train_ids"] + SIZES["num_test_ids"] + 1)
    train = {info["pid_to_identity"][p] for p in train_pids}
    test = {info["pid_to_identity"][p] for p in test_pids}
    assert not train & test
    groups = collections.Counter(pl.part_layout(i).group for i in test)
    assert set(groups.values()) == {pl.GROUP_SIZE}  # two whole groups of four


def _grey_world(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Foreground pixels divided by their mean colour (undoes a camera's colour cast)."""
    pixels = rgb[mask > 0].astype(np.float64)
    return pixels / pixels.mean(0)


def _global_histogram(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """4x4x4 colour histogram of the whole person (the best a global statistic can see)."""
    q = np.clip(_grey_world(rgb, mask) * 2, 0, 3).astype(int)
    h = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float64)
    return h / h.sum()


def _part_means(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean colour of each LIP part group, with the same grey-world normalisation."""
    pixels, fg = _grey_world(rgb, mask), mask[mask > 0]
    return np.concatenate([pixels[np.isin(fg, labels)].mean(0) for labels in lip.PART_GROUPS.values()])


def _separation(features: np.ndarray, ids: np.ndarray) -> tuple[float, float]:
    """(leave-one-out nearest-neighbour accuracy, mean between- / mean within-identity distance)."""
    d = np.linalg.norm(features[:, None] - features[None], axis=-1)
    same, off = ids[:, None] == ids[None], ~np.eye(len(ids), dtype=bool)
    np.fill_diagonal(d, np.inf)
    return float(np.mean(ids[d.argmin(1)] == ids)), float(d[~same].mean() / d[same & off].mean())


def _image_histogram(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """4x4x4 colour histogram of the whole image, background included (what global pooling sees)."""
    q = np.clip(rgb.reshape(-1, 3).astype(int) // 64, 0, 3)
    h = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float64)
    return h / h.sum()


def test_members_of_a_group_differ_in_a_few_percent_of_the_image_which_part_means_see():
    image_scores, person_scores, part_scores, accent = [], [], [], []
    small_parts = lip.PART_GROUPS["head"] + lip.PART_GROUPS["shoes"]
    for group in range(6):
        for other in (1, 2, 3):
            pair = (4 * group, 4 * group + other)
            a, b = pl.part_layout(pair[0]), pl.part_layout(pair[1])
            assert (a.upper, a.lower, a.texture) == (b.upper, b.lower, b.texture) and a.head != b.head
            images = [pl.render(index, cam, image_seed=cam) for index in pair for cam in range(1, 7)]
            accent += [np.isin(mask, small_parts).mean() for _, mask in images]
            ids = np.repeat([0, 1], 6)
            image_scores.append(_separation(np.array([_image_histogram(*x) for x in images]), ids))
            person_scores.append(_separation(np.array([_global_histogram(*x) for x in images]), ids))
            part_scores.append(_separation(np.array([_part_means(*x) for x in images]), ids))
    image_scores, person_scores, part_scores = map(np.array, (image_scores, person_scores, part_scores))
    # Cap and shoes (with the hair and face under the cap) are ~3% of the image (measured 2.6%, max 3.0%).
    assert max(accent) < 0.05
    # Over the whole image, camera (light, background) outweighs the accent: each image's nearest
    # neighbour is the other person (measured: 0 of 216), between/within distance ratio < 1.
    assert image_scores[:, 0].mean() <= 0.1 and image_scores[:, 1].max() < 1.0
    # The person's pixels alone (SPReID's foreground) do better, not reliably (measured: 0.76, min 0.42).
    assert image_scores[:, 0].mean() < person_scores[:, 0].mean() < 1.0
    # Per part, every image's nearest neighbour is the same identity, for every pair (measured ratio >= 2.45).
    assert part_scores[:, 0].min() == 1.0 and part_scores[:, 1].min() > 1.5


def test_written_tree_converts(written, tmp_path):
    info, tmp = written
    m = convert_dataset("market1501", info["root"], tmp_path / "out", overwrite=True)
    assert m == manifest.load_manifest(tmp_path / "out" / "market1501")
    assert m.num_skipped == 0
    counts = {s: (v.num_images, v.num_ids) for s, v in m.splits.items()}
    assert counts == {"train": (info["num_train_images"], info["num_train_ids"]),
                      "query": (info["num_query"], info["num_query_ids"]),
                      "gallery": (info["num_gallery"], info["num_gallery_ids"])}
    assert counts == {"train": (18, 6), "query": (8, 8), "gallery": (8 * 3 + 3, 9)}
    assert m.info["num_distractors"]["gallery"] == 3
    names = [p.name for p in (tmp / "raw" / pl.DATA_DIRNAME).rglob("*.jpg")]
    assert len(names) == info["num_train_images"] + info["num_query"] + info["num_gallery"]
    assert all(market1501.PATTERN.fullmatch(n) for n in names)
    assert len({n.split("_")[2] for n in names}) == len(names)  # unique frame numbers
    # Each query's camera also has one gallery image of that id (the protocol excludes it).
    data_dir = tmp / "raw" / pl.DATA_DIRNAME
    query = dict(p.name.split("_")[:2] for p in (data_dir / "query").iterdir())
    gallery = [p.name.split("_")[:2] for p in (data_dir / "bounding_box_test").iterdir()]
    for pid, cam in query.items():
        cams = [c for p, c in gallery if p == pid]
        assert cams.count(cam) == 1 and len(cams) == 1 + SIZES["gallery_per_test_id"]

    # The converter stores paths relative to the Market folder; read_masks takes them.
    shard = tmp_path / "out" / "market1501" / m.splits["gallery"].shards[0]
    examples = [schema.parse_reid_example(x) for x in tf.data.TFRecordDataset(str(shard))]
    filenames = [x[schema.IMAGE_FILENAME].numpy() for x in examples]
    assert all(f.decode().startswith("bounding_box_test/") for f in filenames)
    masks = pl.read_masks(info["masks_dir"], "bounding_box_test", filenames)
    assert masks.shape == (len(filenames), 128, 64)
    for example, mask in zip(examples, masks):
        assert tf.io.decode_jpeg(example[schema.IMAGE_ENCODED]).shape[:2] == mask.shape
        assert (mask > 0).mean() > 0.15  # a whole person, not an empty mask


def test_masks_are_written_and_read_back(written):
    info, tmp = written
    for split, folder in pl.SPLIT_FOLDERS.items():
        images = sorted(p.name for p in (tmp / "raw" / pl.DATA_DIRNAME / folder).iterdir())
        masks = pl.read_masks(info["masks_dir"], folder, images)
        assert masks.dtype == np.uint8 and masks.shape == (len(images), 128, 64)
        assert set(np.unique(masks)) <= set(range(lip.NUM_CLASSES))
        np.testing.assert_array_equal(pl.read_masks(info["masks_dir"], split, [f"{folder}/{images[0]}"]),
                                      masks[:1])
        # Each mask is exactly the one its image was rendered with.
        pid, cam, frame = images[0].split("_")[:3]
        index = info["pid_to_identity"][int(pid)] if int(pid) else None
        if index is not None:
            _, expected = pl.render(index, int(cam[1]), int(frame))
            np.testing.assert_array_equal(masks[0], expected)
    labels = set(np.unique(pl.read_masks(info["masks_dir"], "train",
                                         [p.name for p in (tmp / "masks" / "bounding_box_train").iterdir()])))
    assert {0, 1, 2, 5, 9, 13, 14, 15, 18, 19} <= labels  # cap, hair, clothes, face, arms, shoes
    with pytest.raises(FileNotFoundError, match="0042_c1s1_999999_01"):
        pl.read_masks(info["masks_dir"], "query", ["query/0042_c1s1_999999_01.jpg"])
    with pytest.raises(ValueError, match="split folder"):
        pl.read_masks(info["masks_dir"], "query", ["bounding_box_test/" + images[0]])
