"""Tests for spreid_tf.data.pipelines on small TFRecords written here (JPEG and PNG)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf

from spreid_tf import lip
from spreid_tf.data import pipelines, schema


# ----------------------------------------------------------------------------- helpers


def _encode(image: np.ndarray, fmt: str) -> bytes:
    """RGB (or single-channel) uint8 -> encoded bytes, as the converters store them."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", image)
    assert ok
    return buf.tobytes()


def _random_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _write_reid(path, rows: list[dict]) -> None:
    """rows: dicts with image (RGB uint8), fmt, filename, label, pid, dataset, camera."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows:
            image = row["image"]
            example = schema.make_reid_example(
                encoded=_encode(image, row.get("fmt", "png")),
                image_format=row.get("fmt", "png"),
                height=image.shape[0],
                width=image.shape[1],
                filename=row["filename"],
                label=row.get("label", 0),
                person_id=row.get("pid", 0),
                dataset=row.get("dataset", "market1501"),
                camera_id=row.get("camera", 0),
            )
            writer.write(example.SerializeToString())


def _write_parsing(path, pairs: list[tuple[np.ndarray, np.ndarray]], fmt: str = "png") -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, (image, mask) in enumerate(pairs):
            example = schema.make_parsing_example(
                encoded=_encode(image, fmt),
                image_format=fmt,
                height=image.shape[0],
                width=image.shape[1],
                filename=f"img_{i:03d}.png",
                mask_png=_encode(mask, "png"),
            )
            writer.write(example.SerializeToString())


def _numpy_flip(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    perm = np.arange(256)
    for left, right in lip.FLIP_PAIRS:
        perm[left], perm[right] = right, left
    return image[:, ::-1], perm[mask[:, ::-1]]


def _labels_in_blocks(rng, height, width, labels, block=4) -> np.ndarray:
    """A mask of constant blocks, so nearest-neighbour and bilinear scaling differ."""
    small = rng.choice(labels, size=(-(-height // block), -(-width // block)))
    return np.kron(small, np.ones((block, block), int))[:height, :width].astype(np.uint8)


# ---------------------------------------------------------------------------- helpers


def test_decode_image_png_exact_and_jpeg_shape():
    rng = np.random.default_rng(0)
    image = _random_image(rng, 12, 7)
    np.testing.assert_array_equal(pipelines.decode_image(_encode(image, "png")).numpy(), image)
    decoded = pipelines.decode_image(_encode(image, "jpeg"))
    assert decoded.dtype == tf.uint8 and decoded.shape == (12, 7, 3)
    gray = pipelines.decode_image(_encode(image[..., 0], "png"))
    assert gray.shape == (12, 7, 3)


@pytest.mark.parametrize("size", [(37, 13), (9, 5)])
def test_resize_uint8_is_bilinear(size):
    image = _random_image(np.random.default_rng(1), 20, 10)
    out = pipelines.resize_uint8(image, size).numpy()
    assert out.dtype == np.uint8 and out.shape == (*size, 3)
    reference = tf.image.resize(image.astype(np.float32), size, method="bilinear").numpy()
    assert np.abs(out.astype(float) - reference).max() <= 0.5 + 1e-4
    cv_reference = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    assert np.abs(out.astype(int) - cv_reference.astype(int)).max() <= 1


def test_flip_parsing_swaps_left_and_right_labels():
    rng = np.random.default_rng(2)
    image = _random_image(rng, 6, 9)
    mask = rng.choice(list(range(lip.NUM_CLASSES)) + [255], size=(6, 9)).astype(np.uint8)
    flipped_image, flipped_mask = pipelines.flip_parsing(image, mask[..., None])
    expected_image, expected_mask = _numpy_flip(image, mask)
    np.testing.assert_array_equal(flipped_image.numpy(), expected_image)
    np.testing.assert_array_equal(flipped_mask.numpy()[..., 0], expected_mask)
    assert flipped_mask.dtype == tf.uint8
    # Batched input flips the width axis too.
    batch_image, batch_mask = pipelines.flip_parsing(image[None], mask[None, ..., None])
    np.testing.assert_array_equal(batch_image.numpy()[0], expected_image)
    np.testing.assert_array_equal(batch_mask.numpy()[0, ..., 0], expected_mask)


# ------------------------------------------------------------------------------ parsing


def test_parsing_training_flip_matches_numpy(tmp_path):
    rng = np.random.default_rng(3)
    image = _random_image(rng, 16, 12)
    mask = _labels_in_blocks(rng, 16, 12, [0, 5, 14, 15, 16, 17, 18, 19])
    _write_parsing(tmp_path / "lip.tfrecord", [(image, mask)])
    # Scale 1 and crop == image size: every sample is the image, flipped or not.
    ds = pipelines.parsing_dataset(
        str(tmp_path / "lip.tfrecord"), batch_size=4, crop_size=(16, 12),
        min_scale=1.0, max_scale=1.0, seed=7,
    )
    flipped_image, flipped_mask = _numpy_flip(image, mask)
    seen = set()
    for images, masks in ds.take(4):
        assert images.dtype == tf.uint8 and images.shape == (4, 16, 12, 3)
        assert masks.dtype == tf.uint8 and masks.shape == (4, 16, 12, 1)
        for im, ma in zip(images.numpy(), masks.numpy()[..., 0]):
            if np.array_equal(ma, mask):
                np.testing.assert_array_equal(im, image)
                seen.add("plain")
            else:
                np.testing.assert_array_equal(ma, flipped_mask)
                np.testing.assert_array_equal(im, flipped_image)
                seen.add("flipped")
    assert seen == {"plain", "flipped"}


def test_parsing_training_masks_keep_label_set(tmp_path):
    rng = np.random.default_rng(4)
    labels = [0, 5, 14, 15]
    pairs = [(_random_image(rng, h, w), _labels_in_blocks(rng, h, w, labels))
             for h, w in [(30, 20), (21, 33), (40, 28)]]
    _write_parsing(tmp_path / "lip.tfrecord", pairs, fmt="jpeg")
    ds = pipelines.parsing_dataset(
        str(tmp_path / "lip.tfrecord"), batch_size=3, crop_size=(36, 36),
        min_scale=0.5, max_scale=2.0, seed=1,
    )
    values = set()
    for _, masks in ds.take(6):
        values |= set(np.unique(masks.numpy()).tolist())
    # Scale 0.5 of a ~30 px image needs padding, so the ignore label must show up.
    assert lip.IGNORE_LABEL in values
    assert values <= {0, 5, 14, 15, lip.IGNORE_LABEL}


def test_parsing_eval_fits_and_pads_deterministically(tmp_path):
    rng = np.random.default_rng(5)
    big = (_random_image(rng, 40, 20), _labels_in_blocks(rng, 40, 20, [0, 2, 16]))
    small = (_random_image(rng, 10, 6), _labels_in_blocks(rng, 10, 6, [0, 9, 19]))
    _write_parsing(tmp_path / "lip.tfrecord", [big, small, big])
    ds = pipelines.parsing_dataset(
        str(tmp_path / "lip.tfrecord"), batch_size=2, crop_size=(20, 20), training=False
    )
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [2, 1]  # ordered, remainder kept
    images = np.concatenate([b[0].numpy() for b in batches])
    masks = np.concatenate([b[1].numpy() for b in batches])[..., 0]
    # 40x20 is scaled by 1/2 to 20x10 (nearest mask), then padded on the right.
    np.testing.assert_array_equal(masks[0, :, :10], big[1][1::2, 1::2])
    assert (masks[0, :, 10:] == lip.IGNORE_LABEL).all()
    assert (images[0, :, 10:] == pipelines.DEFAULT_IMAGE_PAD_VALUE).all()
    # Smaller images are only padded: exact labels and pixels.
    np.testing.assert_array_equal(masks[1, :10, :6], small[1])
    np.testing.assert_array_equal(images[1, :10, :6], small[0])
    assert (masks[1, 10:] == lip.IGNORE_LABEL).all() and (masks[1, :, 6:] == lip.IGNORE_LABEL).all()
    np.testing.assert_array_equal(images[2], images[0])
    again = np.concatenate([b[1].numpy() for b in ds])[..., 0]
    np.testing.assert_array_equal(again, masks)


# ---------------------------------------------------------------------------- re-id train


def _reid_rows(rng, dataset: str, count: int, fmt: str = "jpeg", start: int = 0) -> list[dict]:
    return [
        {"image": _random_image(rng, 16, 8), "fmt": fmt, "filename": f"{dataset}/{i:04d}.jpg",
         "label": i, "pid": 100 + i, "dataset": dataset, "camera": i % 3}
        for i in range(start, start + count)
    ]


def test_train_batches_shape_dtype_and_drop_remainder(tmp_path):
    rng = np.random.default_rng(6)
    _write_reid(tmp_path / "train-00000-of-00002.tfrecord", _reid_rows(rng, "market1501", 4))
    _write_reid(
        tmp_path / "train-00001-of-00002.tfrecord", _reid_rows(rng, "market1501", 3, "png", 4)
    )
    ds = pipelines.train_dataset(
        str(tmp_path / schema.shard_pattern("train")), batch_size=3, image_size=(24, 10),
        repeat=False,
    )
    assert ds.element_spec[0].shape == (3, 24, 10, 3) and ds.element_spec[0].dtype == tf.uint8
    assert ds.element_spec[1].shape == (3,) and ds.element_spec[1].dtype == tf.int32
    batches = list(ds)
    assert len(batches) == 2  # 7 records, batch 3: the last one is dropped
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert len(set(labels.tolist())) == 6 and set(labels.tolist()) <= set(range(7))


def test_train_label_offsets_per_dataset(tmp_path):
    rng = np.random.default_rng(7)
    rows = _reid_rows(rng, "market1501", 5) + _reid_rows(rng, "viper", 5)
    _write_reid(tmp_path / "mixed.tfrecord", rows)
    ds = pipelines.train_dataset(
        str(tmp_path / "mixed.tfrecord"), batch_size=5, image_size=(16, 8),
        label_offsets={"market1501": 0, "viper": 751, "cuhk03": 2000}, repeat=False,
    )
    labels = sorted(np.concatenate([b.numpy() for _, b in ds]).tolist())
    assert labels == [0, 1, 2, 3, 4, 751, 752, 753, 754, 755]


def test_train_unknown_dataset_and_negative_label_fail_clearly(tmp_path):
    rng = np.random.default_rng(8)
    _write_reid(tmp_path / "viper.tfrecord", _reid_rows(rng, "viper", 2))
    ds = pipelines.train_dataset(
        str(tmp_path / "viper.tfrecord"), batch_size=1, image_size=(16, 8),
        label_offsets={"market1501": 0}, repeat=False,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)viper.*label_offsets"):
        next(iter(ds))
    query = _reid_rows(rng, "market1501", 1)
    query[0]["label"] = -1
    _write_reid(tmp_path / "query.tfrecord", query)
    ds = pipelines.train_dataset(str(tmp_path / "query.tfrecord"), batch_size=1, image_size=(16, 8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="evaluation split"):
        next(iter(ds))


def test_train_resize_is_bilinear_and_seed_reproduces(tmp_path):
    rng = np.random.default_rng(9)
    rows = _reid_rows(rng, "market1501", 1, fmt="png")
    _write_reid(tmp_path / "one.tfrecord", rows)
    ds = pipelines.train_dataset(
        str(tmp_path / "one.tfrecord"), batch_size=1, image_size=(40, 14), flip=False
    )
    images, _ = next(iter(ds))
    reference = cv2.resize(rows[0]["image"], (14, 40), interpolation=cv2.INTER_LINEAR)
    assert np.abs(images.numpy()[0].astype(int) - reference.astype(int)).max() <= 1

    _write_reid(tmp_path / "more.tfrecord", _reid_rows(rng, "market1501", 6))

    def first_batches(seed):
        ds = pipelines.train_dataset(
            str(tmp_path / "more.tfrecord"), batch_size=4, image_size=(16, 8), seed=seed
        )
        return [tuple(t.numpy() for t in batch) for batch in ds.take(3)]

    a, b = first_batches(11), first_batches(11)
    for (ia, la), (ib, lb) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(la, lb)


def test_train_flip_mirrors_whole_images(tmp_path):
    image = _random_image(np.random.default_rng(12), 16, 8)
    _write_reid(tmp_path / "one.tfrecord", [{"image": image, "filename": "a.png", "label": 3}])
    ds = pipelines.train_dataset(
        str(tmp_path / "one.tfrecord"), batch_size=8, image_size=(16, 8), seed=3
    )
    images, labels = next(iter(ds))
    assert labels.numpy().tolist() == [3] * 8
    flipped = [not np.array_equal(im, image) for im in images.numpy()]
    for im, was_flipped in zip(images.numpy(), flipped):
        np.testing.assert_array_equal(im, image[:, ::-1] if was_flipped else image)
    assert any(flipped) and not all(flipped)


def test_train_input_context_shards_files_and_per_replica_batch(tmp_path):
    rng = np.random.default_rng(10)
    for i in range(2):
        _write_reid(tmp_path / f"s{i}.tfrecord", _reid_rows(rng, "market1501", 4, start=4 * i))
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    ds = pipelines.train_dataset(
        str(tmp_path / "s*.tfrecord"), batch_size=4, image_size=(16, 8), repeat=False,
        input_context=context,
    )
    labels = np.concatenate([b.numpy() for _, b in ds])
    assert ds.element_spec[1].shape == (2,)
    assert sorted(labels.tolist()) == [4, 5, 6, 7]  # only the second file


# ------------------------------------------------------------------------------- re-id eval


def test_eval_keeps_file_order_and_metadata(tmp_path):
    rng = np.random.default_rng(11)
    query = _reid_rows(rng, "market1501", 3, fmt="png")
    gallery_0 = _reid_rows(rng, "market1501", 2, fmt="png", start=3)
    gallery_1 = _reid_rows(rng, "market1501", 2, fmt="png", start=5)
    _write_reid(tmp_path / "query-00000-of-00001.tfrecord", query)
    # Written out of name order: sorting the glob must put 00000 first.
    _write_reid(tmp_path / "gallery-00001-of-00002.tfrecord", gallery_1)
    _write_reid(tmp_path / "gallery-00000-of-00002.tfrecord", gallery_0)
    ds = pipelines.eval_dataset(
        [str(tmp_path / schema.shard_pattern(split)) for split in ("query", "gallery")],
        batch_size=3, image_size=(20, 10),
    )
    batches = list(ds)
    assert [b["image"].shape[0] for b in batches] == [3, 3, 1]
    rows = query + gallery_0 + gallery_1
    merged = {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}
    assert [f.decode() for f in merged["filename"]] == [r["filename"] for r in rows]
    assert merged["person_id"].tolist() == [r["pid"] for r in rows]
    assert merged["camera_id"].tolist() == [r["camera"] for r in rows]
    assert set(merged["dataset"].tolist()) == {b"market1501"}
    assert merged["person_id"].dtype == np.int32 and merged["image"].dtype == np.uint8
    for image, row in zip(merged["image"], rows):
        expected = pipelines.resize_uint8(row["image"], (20, 10)).numpy()
        np.testing.assert_array_equal(image, expected)


# ------------------------------------------------------------------------------ validation


def test_errors_are_clear(tmp_path):
    missing = str(tmp_path / "nothing-*.tfrecord")
    with pytest.raises(FileNotFoundError, match="nothing-"):
        pipelines.train_dataset(missing, batch_size=2, image_size=(8, 4))
    with pytest.raises(FileNotFoundError, match="nothing-"):
        pipelines.eval_dataset([missing], batch_size=2, image_size=(8, 4))
    with pytest.raises(FileNotFoundError, match="nothing-"):
        pipelines.parsing_dataset(missing, batch_size=2)
    _write_reid(tmp_path / "one.tfrecord", _reid_rows(np.random.default_rng(0), "viper", 1))
    good = str(tmp_path / "one.tfrecord")
    with pytest.raises(ValueError, match="batch_size"):
        pipelines.train_dataset(good, batch_size=0, image_size=(8, 4))
    with pytest.raises(ValueError, match="batch_size"):
        pipelines.eval_dataset(good, batch_size=-1, image_size=(8, 4))
    for bad in [(0, 4), (8,), (8.0, 4), None]:
        with pytest.raises(ValueError, match="image_size"):
            pipelines.train_dataset(good, batch_size=2, image_size=bad)
    with pytest.raises(ValueError, match="crop_size"):
        pipelines.parsing_dataset(good, batch_size=2, crop_size=(0, 512))
    with pytest.raises(ValueError, match="min_scale"):
        pipelines.parsing_dataset(good, batch_size=2, min_scale=2.0, max_scale=1.0)
    with pytest.raises(ValueError, match="ignore_label"):
        pipelines.parsing_dataset(good, batch_size=2, ignore_label=15)
    with pytest.raises(ValueError, match="label_offsets"):
        pipelines.train_dataset(good, batch_size=2, image_size=(8, 4), label_offsets={"viper": -3})
    bad_mask = np.full((8, 4), 40, np.uint8)
    bad_image = _random_image(np.random.default_rng(1), 8, 4)
    _write_parsing(tmp_path / "colour.tfrecord", [(bad_image, bad_mask)])
    ds = pipelines.parsing_dataset(str(tmp_path / "colour.tfrecord"), batch_size=1, training=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)img_000.png.*LIP labels"):
        next(iter(ds))
    with pytest.raises(ValueError, match="empty"):
        pipelines.train_dataset([], batch_size=2, image_size=(8, 4))
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=0)
    with pytest.raises(ValueError, match="input pipelines"):
        pipelines.train_dataset(good, batch_size=2, image_size=(8, 4), input_context=context)
