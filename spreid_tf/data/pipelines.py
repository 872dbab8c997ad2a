"""tf.data input pipelines: re-id training and evaluation, LIP human parsing.

The pipelines read the TFRecord shards that the converters write (see `schema`) and
yield uint8 images: the models take raw RGB in [0, 255] and do their own
preprocessing, so the training pipeline, evaluation and the exported SavedModel
agree. Images are resized here (bilinear, no antialiasing, half-pixel centres like
`cv2.INTER_LINEAR`), rounded and cast back to uint8, which keeps host-to-device
copies four times smaller than float32.

- `train_dataset`: shuffled shards, interleaved, shuffled records, decode, random
  horizontal flip, resize, `(images, labels)` batches with the remainder dropped.
  Labels get a per-dataset offset so that merged benchmarks never share a label.
- `eval_dataset`: ordered, every record once, dict batches carrying person id,
  camera id, filename and dataset name for the evaluation protocols.
- `parsing_dataset`: LIP images and label masks scaled, padded, cropped and flipped
  together (nearest-neighbour masks; a flip swaps the left/right labels).

Each reads, instead of TFRecord shards, a split of a TensorFlow Datasets build of
`spreid_tf.data.tfds` when given one `tfds:` source (`tfds:spreid_market1501`,
`tfds:spreid_cuhk03/labeled_classic0,data_dir=/data/tfds,split=query`; see
`spreid_tf.data.tfds_source`; needs the extra `tfds`). The builds store the bytes the
converter stores, so the images, labels and ids are the same; only the record order
differs (TFDS shuffles by key when it writes).

Batch sizes are global. With `tf.distribute`, either pass the dataset to
`strategy.experimental_distribute_dataset` (it splits each global batch over the
replicas), or build it inside `strategy.distribute_datasets_from_function` and pass
the `tf.distribute.InputContext`: each input pipeline then reads its own subset of
the shards and batches at the per-replica size.

Randomness is stateless: each element's flips, scales and crops come from
`(seed, position in the stream)`, so a seeded pipeline with deterministic order
reproduces exactly, and parallel maps need no shared random state.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence

import tensorflow as tf

from spreid_tf import lip
from spreid_tf.data import schema, tfds_source

AUTOTUNE = tf.data.AUTOTUNE

FilePatterns = str | os.PathLike | Sequence[str | os.PathLike]

# Encoded re-id crops are ~2-10 KB, so 8192 serialized records cost well under
# 100 MB and mix the ~8 shards of several benchmarks that the interleave reads at once.
DEFAULT_SHUFFLE_BUFFER = 8192
# LIP records are larger (~20-60 KB with the mask PNG).
DEFAULT_PARSING_SHUFFLE_BUFFER = 2048
# Enough open shards that a 10-benchmark merge (8 shards each) mixes early.
DEFAULT_CYCLE_LENGTH = 16
# Padding value for parsing images: InceptionV3's preprocessing (x / 127.5 - 1) maps
# it to ~0, as DeepLab pads with the mean pixel; the mask is padded with ignore_label.
DEFAULT_IMAGE_PAD_VALUE = 128


# --------------------------------------------------------------------------- helpers


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG or PNG bytes (the format is read from the header) to uint8 RGB.

    Args:
        encoded: scalar tf.string.

    Returns:
        uint8 tensor (H, W, 3); grayscale inputs are expanded to three channels and
        animations truncated to their first frame.
    """
    # decode_image is one C++ op that dispatches on the header, as fast as decode_jpeg.
    return tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)


def resize_uint8(image: tf.Tensor, size: Sequence[int] | tf.Tensor) -> tf.Tensor:
    """Bilinear resize of a uint8 image (or batch) to `size`, rounded back to uint8.

    Half-pixel centres and no antialiasing, i.e. the same sampling as
    `cv2.resize(..., interpolation=cv2.INTER_LINEAR)` (within 1 grey level).

    Args:
        image: uint8 (H, W, C) or (B, H, W, C).
        size: (height, width).

    Returns:
        uint8 tensor of the same rank with spatial size `size`.
    """
    resized = tf.image.resize(image, size, method=tf.image.ResizeMethod.BILINEAR, antialias=False)
    return _to_uint8(resized)


def flip_parsing(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Horizontally flips an image and its LIP mask, swapping left/right labels.

    A flipped left arm becomes a right arm: labels 14/15, 16/17 and 18/19 are
    swapped (`lip.flip_permutation`); other values (ignore_label included) are kept.

    Args:
        image: (H, W, C) or (B, H, W, C), any dtype.
        mask: (H, W, 1) or (B, H, W, 1) integer labels in [0, 255].

    Returns:
        (flipped image, flipped and relabelled mask), same shapes and dtypes.
    """
    # The width axis is -2 for both single images and batches.
    image = tf.reverse(image, axis=[-2])
    mask = tf.reverse(mask, axis=[-2])
    return image, _permute_labels(mask)


def _flip_lookup() -> tf.Tensor:
    # Identity beyond the LIP labels, so ignore_label (255) and padding survive.
    perm = lip.flip_permutation() + list(range(lip.NUM_CLASSES, 256))
    return tf.constant(perm, dtype=tf.int32)


def _permute_labels(mask: tf.Tensor) -> tf.Tensor:
    values = tf.cast(mask, tf.int32)
    return tf.cast(tf.gather(_flip_lookup(), values), mask.dtype)


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


# ------------------------------------------------------------------------ validation


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _check_size(name: str, size: Sequence[int]) -> tuple[int, int]:
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (height, width), got {size!r}") from None
    for value in (height, width):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be two positive ints (height, width), got {size!r}")
    return height, width


def _tfds_source(file_patterns: FilePatterns, default_split: str | None) -> tfds_source.TfdsSource | None:
    """The `tfds:` source `file_patterns` names (with its split, or `default_split`), or None for TFRecords.

    Raises:
        ValueError: a `tfds:` source beside other patterns, or no split where none is the default.
    """
    patterns = [file_patterns] if isinstance(file_patterns, (str, os.PathLike)) else list(file_patterns)
    sources = [p for p in patterns if tfds_source.is_tfds_source(p)]
    if not sources:
        return None
    if len(patterns) != 1:
        raise ValueError(f"a tfds: source is read alone, not beside other sources or TFRecord patterns; got "
                         f"{[os.fspath(p) for p in patterns]}")
    source = tfds_source.parse_tfds_source(sources[0])
    if source.split is None:
        if default_split is None:
            raise ValueError(f"{sources[0]!r}: name the split to read, e.g. {sources[0]},split=query")
        source = source.with_split(default_split)
    return source


def _list_files(file_patterns: FilePatterns) -> list[str]:
    """Expands patterns in the order given (each one's matches sorted), without duplicates."""
    if isinstance(file_patterns, (str, os.PathLike)):
        patterns = [os.fspath(file_patterns)]
    else:
        patterns = [os.fspath(p) for p in file_patterns]
    if not patterns:
        raise ValueError("file_patterns is empty: give at least one TFRecord path or glob")
    files: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        matches = sorted(tf.io.gfile.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"No TFRecord files match {pattern!r}")
        for path in matches:
            if path not in seen:
                seen.add(path)
                files.append(path)
    return files


def _shard_for_input_context(
    files: list[str], input_context: tf.distribute.InputContext | None
) -> list[str]:
    if input_context is None or input_context.num_input_pipelines == 1:
        return files
    count, index = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(files) < count:
        raise ValueError(
            f"{len(files)} TFRecord files cannot be split over {count} input pipelines; "
            "write more shards or use strategy.experimental_distribute_dataset"
        )
    return files[index::count]


def _base_seed(seed: int | None, input_context: tf.distribute.InputContext | None) -> int:
    if seed is None:
        seed = random.SystemRandom().randrange(2**31 - 1)
    if input_context is not None:
        # Different pipelines read different shards; their streams differ anyway, but
        # distinct seeds avoid identical flip patterns across them.
        seed += 1_000_003 * input_context.input_pipeline_id
    return seed


# -------------------------------------------------------------------- record reading


def _check_shuffle_buffer(shuffle_buffer: int | None) -> None:
    if shuffle_buffer is None or shuffle_buffer < 1:
        raise ValueError(f"shuffle_buffer must be a positive int, got {shuffle_buffer!r}")


def _training_records(
    files: list[str],
    *,
    shuffle_buffer: int,
    seed: int | None,
    deterministic: bool,
    cycle_length: int | None,
    num_parallel_calls: int,
    repeat: bool,
) -> tf.data.Dataset:
    """Serialized records: shuffled shards, interleaved, shuffled, optionally repeated."""
    _check_shuffle_buffer(shuffle_buffer)
    cycle = min(len(files), cycle_length or DEFAULT_CYCLE_LENGTH)
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # Repeat before the interleave so epochs flow into each other without a drain.
    if repeat:
        ds = ds.repeat()
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=cycle,
        block_length=1,
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )
    # Shuffle serialized bytes, not decoded images: far less memory per slot.
    return ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)


def _with_seeds(ds: tf.data.Dataset, base_seed: int) -> tf.data.Dataset:
    """Pairs each element with a stateless seed (base_seed, position in the stream)."""
    seeds = tf.data.Dataset.counter(dtype=tf.int64).map(
        lambda i: tf.stack([tf.constant(base_seed, tf.int64), i])
    )
    return tf.data.Dataset.zip((ds, seeds))


def _training_batches(
    files: list[str],
    parse,
    *,
    batch_size: int,
    shuffle_buffer: int,
    seed: int | None,
    input_context: tf.distribute.InputContext | None,
    deterministic: bool,
    cycle_length: int | None,
    num_parallel_calls: int,
    repeat: bool,
) -> tf.data.Dataset:
    """Shuffled records, each with its stateless seed, parsed by `parse(serialized, seed)`,
    batched with the remainder dropped and prefetched (the re-id and parsing training tail)."""
    ds = _training_records(
        files,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        deterministic=deterministic,
        cycle_length=cycle_length,
        num_parallel_calls=num_parallel_calls,
        repeat=repeat,
    )
    return _seeded_batches(ds, parse, batch_size=batch_size, seed=seed, input_context=input_context,
                           deterministic=deterministic, num_parallel_calls=num_parallel_calls)


def _tfds_training_batches(
    records: tf.data.Dataset,
    parse,
    *,
    batch_size: int,
    shuffle_buffer: int,
    seed: int | None,
    input_context: tf.distribute.InputContext | None,
    deterministic: bool,
    num_parallel_calls: int,
    repeat: bool,
) -> tf.data.Dataset:
    """`_training_batches` for records of a TFDS split (read with shuffled files), as feature dicts."""
    _check_shuffle_buffer(shuffle_buffer)
    if repeat:
        records = records.repeat()
    records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return _seeded_batches(records, parse, batch_size=batch_size, seed=seed, input_context=input_context,
                           deterministic=deterministic, num_parallel_calls=num_parallel_calls)


def _seeded_batches(
    ds: tf.data.Dataset,
    parse,
    *,
    batch_size: int,
    seed: int | None,
    input_context: tf.distribute.InputContext | None,
    deterministic: bool,
    num_parallel_calls: int,
) -> tf.data.Dataset:
    """Each record with its stateless seed, parsed by `parse(record, seed)`, batched (remainder dropped)."""
    ds = _with_seeds(ds, _base_seed(seed, input_context))
    ds = ds.map(parse, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=True)
    return _finish(ds, deterministic)


def _finish(ds: tf.data.Dataset, deterministic: bool) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.prefetch(AUTOTUNE).with_options(options)


# ------------------------------------------------------------------------------ re-id


def _label_offset_table(label_offsets: Mapping[str, int]) -> tf.lookup.StaticHashTable:
    if not label_offsets:
        raise ValueError("label_offsets is empty; pass None to use the labels as stored")
    for name, offset in label_offsets.items():
        if not isinstance(name, str) or isinstance(offset, bool) or not isinstance(offset, int):
            raise ValueError(f"label_offsets must map str -> int, got {name!r}: {offset!r}")
        if offset < 0:
            raise ValueError(f"label_offsets[{name!r}] must be >= 0, got {offset}")
    keys = list(label_offsets)
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys, tf.string),
        tf.constant([label_offsets[k] for k in keys], tf.int64),
    )
    # -1 marks "not in the map"; real offsets are >= 0 (checked above).
    return tf.lookup.StaticHashTable(initializer, default_value=-1)


def train_dataset(
    file_patterns: FilePatterns,
    *,
    batch_size: int,
    image_size: tuple[int, int],
    label_offsets: Mapping[str, int] | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    flip: bool = True,
    seed: int | None = None,
    deterministic: bool = False,
    cycle_length: int | None = DEFAULT_CYCLE_LENGTH,
    num_parallel_calls: int = AUTOTUNE,
    repeat: bool = True,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Re-id training batches `(images, labels)`.

    Args:
        file_patterns: TFRecord paths or globs (re-id schema); each must match a file. Or
            one `tfds:` source (split "train" unless it names one).
        batch_size: global batch size (per-replica size derived from input_context).
        image_size: (height, width) of the output images, e.g. (492, 164).
        label_offsets: dataset name -> offset added to `image/class/label`, so that
            merged benchmarks have disjoint labels; a record of a dataset missing from
            the map fails with an error naming the dataset and file. None keeps the
            stored labels.
        shuffle_buffer: records in the shuffle buffer (serialized, before decoding).
        flip: random horizontal flip with probability 0.5.
        seed: fixes shard order, shuffles and flips; also makes the order deterministic.
        deterministic: keep a deterministic element order (slower) even without a seed.
        cycle_length: shards read concurrently (capped at the number of shards).
        num_parallel_calls: parallelism of the interleave and decode stages.
        repeat: repeat forever (iteration-based training); False gives one epoch.
        input_context: from `distribute_datasets_from_function`; shards the files by
            input pipeline and batches at the per-replica size.

    Returns:
        Dataset of (uint8 (B, H, W, 3), int32 (B,)), remainder dropped so B is static.
        Records with a negative label (evaluation splits) fail with an error.
    """
    _check_batch_size(batch_size)
    size = _check_size("image_size", image_size)
    source = _tfds_source(file_patterns, default_split="train")
    files = None if source is not None else _shard_for_input_context(_list_files(file_patterns), input_context)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    deterministic = bool(deterministic or seed is not None)
    table = _label_offset_table(label_offsets) if label_offsets is not None else None
    known = ", ".join(sorted(label_offsets)) if label_offsets else ""

    def parse_features(features: dict[str, tf.Tensor], element_seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        filename = features[schema.IMAGE_FILENAME]
        label = features[schema.CLASS_LABEL]
        checks = [
            tf.debugging.Assert(
                label >= 0,
                ["Negative image/class/label (an evaluation split?) in record", filename],
            )
        ]
        if table is not None:
            dataset = features[schema.PERSON_DATASET]
            offset = table.lookup(dataset)
            checks.append(
                tf.debugging.Assert(
                    offset >= 0,
                    ["Dataset", dataset, "of record", filename,
                     f"is not in label_offsets (known: {known})"],
                )
            )
            label = label + offset
        with tf.control_dependencies(checks):
            label = tf.cast(label, tf.int32)
        image = decode_image(features[schema.IMAGE_ENCODED])
        if flip:
            # Flip the small source image: cheaper than the resized one, same result.
            do_flip = tf.random.stateless_uniform([], seed=element_seed) < 0.5
            image = tf.cond(do_flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
        image = resize_uint8(image, size)
        image.set_shape([*size, 3])
        return image, label

    if source is not None:
        records = tfds_source.builders_module(source.text()).reid_features(
            source.name, source.split, source.data_dir, what=source.text(), shuffle_files=True, seed=seed,
            input_context=input_context)
        return _tfds_training_batches(records, parse_features, batch_size=batch_size, shuffle_buffer=shuffle_buffer,
                                      seed=seed, input_context=input_context, deterministic=deterministic,
                                      num_parallel_calls=num_parallel_calls, repeat=repeat)
    return _training_batches(
        files,
        lambda serialized, element_seed: parse_features(schema.parse_reid_example(serialized), element_seed),
        batch_size=batch_size,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        input_context=input_context,
        deterministic=deterministic,
        cycle_length=cycle_length,
        num_parallel_calls=num_parallel_calls,
        repeat=repeat,
    )


def eval_dataset(
    file_patterns: FilePatterns,
    *,
    batch_size: int,
    image_size: tuple[int, int] | None,
    images: bool = True,
    indices: Sequence[int] | None = None,
    num_parallel_calls: int = AUTOTUNE,
) -> tf.data.Dataset:
    """Re-id evaluation batches in file order, every record exactly once.

    Files are read one after another: patterns in the order given, each pattern's
    matches sorted by name (so `[query, gallery]` gives the query first). The one reader
    of re-id records for evaluation: features, ids alone (`images=False`), and the
    original images for pictures (`image_size=None`, batch_size 1).

    Args:
        file_patterns: TFRecord paths or globs (re-id schema); each must match a file. Or
            one `tfds:` source naming its split (`,split=query`; `split=query+gallery` reads
            both, in that order).
        batch_size: images per batch; the last batch may be smaller.
        image_size: (height, width) of the output images (bilinear resize); None keeps
            each image's own size (then batch_size must be 1).
        images: False: no "image" entry and no decoding (ids and filenames only).
        indices: only the records at these positions (file order), in file order;
            the others are not parsed.
        num_parallel_calls: decode parallelism (order is kept regardless).

    Returns:
        Dataset of dicts: "image" uint8 (B, H, W, 3), "person_id" int32 (B,),
        "camera_id" int32 (B,), "filename" string (B,), "dataset" string (B,).
    """
    _check_batch_size(batch_size)
    size = _check_size("image_size", image_size) if image_size is not None else None
    if images and size is None and batch_size != 1:
        raise ValueError(f"image_size=None keeps each image's size: batch_size must be 1, got {batch_size}")
    source = _tfds_source(file_patterns, default_split=None)
    files = None if source is not None else _list_files(file_patterns)

    def parse_features(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = {
            "person_id": tf.cast(features[schema.PERSON_ID], tf.int32),
            "camera_id": tf.cast(features[schema.CAMERA_ID], tf.int32),
            "filename": features[schema.IMAGE_FILENAME],
            "dataset": features[schema.PERSON_DATASET],
        }
        if images:
            image = decode_image(features[schema.IMAGE_ENCODED])
            if size is not None:
                image = resize_uint8(image, size)
                image.set_shape([*size, 3])
            out["image"] = image
        return out

    if source is not None:
        ds = tfds_source.builders_module(source.text()).reid_features(source.name, source.split, source.data_dir,
                                                                      what=source.text())
        parse = parse_features
    else:
        ds = tf.data.TFRecordDataset(files)

        def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            return parse_features(schema.parse_reid_example(serialized))

    if indices is not None:
        wanted = tf.constant(sorted({int(i) for i in indices}), tf.int64)
        ds = ds.enumerate().filter(lambda i, _: tf.reduce_any(tf.equal(i, wanted))).map(lambda _, s: s)
    ds = ds.map(parse, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    return _finish(ds, deterministic=True)


# ---------------------------------------------------------------------------- parsing


def _decode_parsing(
    features: dict[str, tf.Tensor], ignore_label: int
) -> tuple[tf.Tensor, tf.Tensor]:
    filename = features[schema.IMAGE_FILENAME]
    image = decode_image(features[schema.IMAGE_ENCODED])
    mask = tf.io.decode_png(features[schema.MASK_ENCODED], channels=1, dtype=tf.uint8)
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(mask)[:2]))
    # A colour (or palette-expanded) PNG gives colours, not labels: fail rather than train on it.
    labels_ok = tf.reduce_all((mask < lip.NUM_CLASSES) | (mask == ignore_label))
    checks = [
        tf.debugging.Assert(
            same,
            ["Image and mask sizes differ in record", filename, tf.shape(image), tf.shape(mask)],
        ),
        tf.debugging.Assert(
            labels_ok,
            ["Mask of record", filename,
             f"has values outside the LIP labels 0-{lip.NUM_CLASSES - 1} and {ignore_label} "
             "(a palette/colour PNG instead of one label per pixel?); max value",
             tf.reduce_max(mask)],
        ),
    ]
    with tf.control_dependencies(checks):
        mask = tf.identity(mask)
    return image, mask


def _pad_to(
    image: tf.Tensor, mask: tf.Tensor, crop: tuple[int, int], pad_value: int, ignore_label: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Pads bottom/right up to at least `crop` (image with pad_value, mask with ignore)."""
    shape = tf.shape(image)
    pad_h = tf.maximum(crop[0] - shape[0], 0)
    pad_w = tf.maximum(crop[1] - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w], [0, 0]]
    image = tf.pad(image, paddings, constant_values=tf.cast(pad_value, image.dtype))
    mask = tf.pad(mask, paddings, constant_values=tf.cast(ignore_label, mask.dtype))
    return image, mask


def _scale_pair(
    image: tf.Tensor, mask: tf.Tensor, new_size: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Bilinear image (float32 out), nearest-neighbour mask: no invented labels."""
    image = tf.image.resize(image, new_size, method=tf.image.ResizeMethod.BILINEAR)
    mask = tf.image.resize(mask, new_size, method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
    return image, mask


def parsing_dataset(
    file_patterns: FilePatterns,
    *,
    batch_size: int,
    crop_size: tuple[int, int] = (512, 512),
    training: bool = True,
    min_scale: float = 0.5,
    max_scale: float = 2.0,
    ignore_label: int = lip.IGNORE_LABEL,
    image_pad_value: int = DEFAULT_IMAGE_PAD_VALUE,
    flip: bool = True,
    seed: int | None = None,
    deterministic: bool = False,
    shuffle_buffer: int = DEFAULT_PARSING_SHUFFLE_BUFFER,
    cycle_length: int | None = DEFAULT_CYCLE_LENGTH,
    num_parallel_calls: int = AUTOTUNE,
    repeat: bool = True,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """LIP human-parsing batches `(images, masks)`.

    Training: each image and its mask are scaled by a factor drawn uniformly from
    [min_scale, max_scale] (bilinear image, nearest-neighbour mask), padded
    bottom/right to at least crop_size (image with image_pad_value, mask with
    ignore_label), randomly cropped to crop_size and flipped with probability 0.5
    (`flip_parsing`: left/right labels swapped). Shuffled, repeated, remainder dropped.

    Evaluation (training=False): no randomness. An image larger than crop_size is
    scaled down, aspect ratio kept, until it fits (bilinear image, nearest mask);
    then it is padded bottom/right to crop_size. Padded mask pixels are
    ignore_label, so they drop out of the scores, which are on this grid. Files
    in order (as `eval_dataset`), one pass, last batch may be smaller.

    Args:
        file_patterns: TFRecord paths or globs (parsing schema). Or one `tfds:` source
            (split "train" for training, "val" for evaluation, unless it names one).
        batch_size: global batch size (per-replica size derived from input_context).
        crop_size: (height, width) of the output.
        training: random augmentation and shuffling, or deterministic evaluation.
        min_scale, max_scale: range of the random scale factor (training only).
        ignore_label: mask value for padding; must not be a LIP label.
        image_pad_value: image padding (128 is ~0 after InceptionV3 preprocessing).
        flip: random horizontal flip (training only).
        seed: fixes shuffles, scales, crops and flips; makes the order deterministic.
        deterministic: deterministic order (slower) even without a seed.
        shuffle_buffer, cycle_length, num_parallel_calls, repeat, input_context: as in
            `train_dataset` (training only, except num_parallel_calls).

    Returns:
        Dataset of (uint8 (B, h, w, 3), uint8 (B, h, w, 1)).
    """
    _check_batch_size(batch_size)
    crop = _check_size("crop_size", crop_size)
    if not 0 < min_scale <= max_scale:
        raise ValueError(f"Need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
    if not lip.NUM_CLASSES <= ignore_label <= 255:
        raise ValueError(
            f"ignore_label must be in [{lip.NUM_CLASSES}, 255] (not a LIP label), "
            f"got {ignore_label}"
        )
    if not 0 <= image_pad_value <= 255:
        raise ValueError(f"image_pad_value must be in [0, 255], got {image_pad_value}")
    source = _tfds_source(file_patterns, default_split="train" if training else "val")
    files = None if source is not None else _list_files(file_patterns)

    def tfds_records(**read_options) -> tf.data.Dataset:
        return tfds_source.builders_module(source.text()).parsing_features(
            source.name, source.split, source.data_dir, what=source.text(), **read_options)

    if not training:

        def parse_eval_features(features: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
            image, mask = _decode_parsing(features, ignore_label)
            shape = tf.cast(tf.shape(image)[:2], tf.float32)
            scale = tf.reduce_min(tf.constant(crop, tf.float32) / shape)
            fitted = tf.minimum(
                tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1), tf.constant(crop)
            )

            def shrink() -> tuple[tf.Tensor, tf.Tensor]:
                small_image, small_mask = _scale_pair(image, mask, fitted)
                return _to_uint8(small_image), small_mask

            # Never upscale: smaller images are only padded, so their labels are exact.
            image, mask = tf.cond(scale < 1.0, shrink, lambda: (image, mask))
            image, mask = _pad_to(image, mask, crop, image_pad_value, ignore_label)
            image.set_shape([*crop, 3])
            mask.set_shape([*crop, 1])
            return image, mask

        if source is not None:
            ds = tfds_records().map(parse_eval_features, num_parallel_calls=num_parallel_calls,
                                    deterministic=True)
        else:
            ds = tf.data.TFRecordDataset(files).map(
                lambda serialized: parse_eval_features(schema.parse_parsing_example(serialized)),
                num_parallel_calls=num_parallel_calls, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=False)
        return _finish(ds, deterministic=True)

    if source is None:
        files = _shard_for_input_context(files, input_context)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    deterministic = bool(deterministic or seed is not None)

    def parse_train_features(features: dict[str, tf.Tensor], element_seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask = _decode_parsing(features, ignore_label)
        scale_seed, y_seed, x_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(element_seed, num=4)
        )
        scale = tf.random.stateless_uniform([], seed=scale_seed, minval=min_scale, maxval=max_scale)
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        new_size = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)
        image, mask = _scale_pair(image, mask, new_size)
        image, mask = _pad_to(image, mask, crop, image_pad_value, ignore_label)
        padded = tf.shape(image)
        top = tf.random.stateless_uniform(
            [], seed=y_seed, minval=0, maxval=padded[0] - crop[0] + 1, dtype=tf.int32
        )
        left = tf.random.stateless_uniform(
            [], seed=x_seed, minval=0, maxval=padded[1] - crop[1] + 1, dtype=tf.int32
        )
        image = tf.slice(image, [top, left, 0], [crop[0], crop[1], 3])
        mask = tf.slice(mask, [top, left, 0], [crop[0], crop[1], 1])
        # Round only once, after the crop: fewer pixels to convert.
        image = _to_uint8(image)
        if flip:
            do_flip = tf.random.stateless_uniform([], seed=flip_seed) < 0.5
            image, mask = tf.cond(do_flip, lambda: flip_parsing(image, mask), lambda: (image, mask))
        image.set_shape([*crop, 3])
        mask.set_shape([*crop, 1])
        return image, mask

    if source is not None:
        return _tfds_training_batches(
            tfds_records(shuffle_files=True, seed=seed, input_context=input_context), parse_train_features,
            batch_size=batch_size, shuffle_buffer=shuffle_buffer, seed=seed, input_context=input_context,
            deterministic=deterministic, num_parallel_calls=num_parallel_calls, repeat=repeat)
    return _training_batches(
        files,
        lambda serialized, element_seed: parse_train_features(schema.parse_parsing_example(serialized),
                                                              element_seed),
        batch_size=batch_size,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        input_context=input_context,
        deterministic=deterministic,
        cycle_length=cycle_length,
        num_parallel_calls=num_parallel_calls,
        repeat=repeat,
    )
