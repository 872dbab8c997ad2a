"""Converts a raw benchmark folder into sharded TFRecords and a manifest.

    manifest = convert_dataset("market1501", "/data/raw/market1501", "/data/tfrecords")

writes

    /data/tfrecords/market1501/
        train-00000-of-00004.tfrecord ... (re-id Examples, see schema.py)
        query-00000-of-00001.tfrecord
        gallery-00000-of-00005.tfrecord ...
        manifest.json

Every image is checked and decoded once (with TensorFlow's decoders, the ones the
tf.data pipelines use, so a file that passes here decodes there); zero-byte, unknown
or corrupt files are listed in the manifest with a reason instead of stopping the
run. The original bytes are stored (never re-encoded); BMP files, which the schema
does not allow, are the one exception: they are transcoded losslessly to PNG and
counted in the manifest. Training labels are contiguous over the valid `train`
images, in person-id order; evaluation splits get label -1.

The conversion is atomic: everything is written into a hidden temporary sibling
folder (shards as `*.tmp`, renamed once every split is written), the manifest last,
and the folder is renamed into place only when complete; a failure removes it, and a
killed run leaves only a hidden folder with no manifest and no `*.tfrecord` file. Re-running over a
finished conversion returns its manifest (same schema version, source root and
reader options); `overwrite=True` replaces it atomically.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import tensorflow as tf

import spreid_tf
from spreid_tf.data import image_formats, merge, registry, schema
from spreid_tf.data.manifest import Manifest, SplitEntry, load_manifest, write_manifest
from spreid_tf.data.records import (REASON_CORRUPT, REASON_MASK, REASON_MISSING, REASON_NOT_IMAGE,
                                    REASON_UNREADABLE, REASON_ZERO_BYTE, ParsingRecord, ReadResult, Record,
                                    layout_error)

logger = logging.getLogger(__name__)

# Default shard size; shards of ~4K person crops are tens of MB.
IMAGES_PER_SHARD = 4096
# Seed of the fixed shuffle of training images across shards.
SHUFFLE_SEED = 0



class BadImageError(ValueError):
    """An image that cannot be stored; `reason` starts with a records.REASON_*."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class CheckedImage:
    """The bytes to store for an image, with its format and size."""

    encoded: bytes
    image_format: str  # "jpeg" | "png"
    height: int
    width: int
    transcoded: bool = False
    num_source_bytes: int = 0


# What the converter accepts: JPEG and PNG are stored as they are, BMP turned into PNG.
CONVERTED_FORMATS = ("jpeg", "png", "bmp")


def check_image(data: bytes) -> CheckedImage:
    """Decodes `data` once and returns what to store.

    Raises:
        BadImageError: zero bytes, unknown format, or the decoder fails.
    """
    if not data:
        raise BadImageError(REASON_ZERO_BYTE)
    fmt = image_formats.sniff_format(data)
    if fmt is None:
        raise BadImageError(f"{REASON_NOT_IMAGE}: unknown format (first bytes {data[:8]!r})")
    if fmt not in CONVERTED_FORMATS:
        raise BadImageError(f"{REASON_NOT_IMAGE}: {fmt} is not converted (JPEG, PNG and BMP are)")
    try:
        if fmt == "jpeg":
            image = tf.io.decode_jpeg(data)
        elif fmt == "png":
            image = tf.io.decode_png(data)
        else:
            image = tf.io.decode_bmp(data)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        raise BadImageError(f"{REASON_CORRUPT}: {fmt} decoder failed ({image_formats.decoder_message(e)})") from None
    height, width = int(image.shape[0]), int(image.shape[1])
    if height == 0 or width == 0:
        raise BadImageError(f"{REASON_CORRUPT}: empty {height}x{width} image")
    if fmt == "bmp":
        # The schema allows JPEG and PNG only; PNG keeps every pixel.
        return CheckedImage(tf.io.encode_png(image).numpy(), "png", height, width, transcoded=True,
                            num_source_bytes=len(data))
    return CheckedImage(data, fmt, height, width, num_source_bytes=len(data))


def check_mask(data: bytes, height: int, width: int) -> None:
    """Checks a LIP mask: a single-channel 8-bit PNG of the image's size, labels 0-19 or 255.

    Raises:
        BadImageError: with REASON_ZERO_BYTE or REASON_MASK.
    """
    from spreid_tf import lip

    if not data:
        raise BadImageError(f"{REASON_ZERO_BYTE}: mask")
    if image_formats.sniff_format(data) != "png":
        raise BadImageError(f"{REASON_MASK}: not a PNG")
    try:
        mask = tf.io.decode_png(data, channels=0, dtype=tf.uint8).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        raise BadImageError(f"{REASON_MASK}: corrupt PNG") from None
    if mask.shape[2] != 1:
        raise BadImageError(f"{REASON_MASK}: {mask.shape[2]} channels, expected 1")
    if mask.shape[:2] != (height, width):
        raise BadImageError(
            f"{REASON_MASK}: size mismatch, mask {mask.shape[0]}x{mask.shape[1]} vs image {height}x{width}")
    values = np.unique(mask)
    bad = values[(values >= lip.NUM_CLASSES) & (values != lip.IGNORE_LABEL)]
    if bad.size:
        raise BadImageError(f"{REASON_MASK}: labels {bad.tolist()} outside 0-{lip.NUM_CLASSES - 1}")


class _Progress:
    """Logs every `every` steps: count, rate and ETA."""

    def __init__(self, what: str, total: int, every: int):
        self.what, self.total, self.every = what, total, max(1, every)
        self.start = time.monotonic()
        self.count = 0

    def step(self) -> None:
        self.count += 1
        if self.count % self.every == 0 or self.count == self.total:
            elapsed = time.monotonic() - self.start
            rate = self.count / max(elapsed, 1e-9)
            eta = (self.total - self.count) / max(rate, 1e-9)
            logger.info("%s: %d/%d images (%.0f/s, ETA %.0fs)", self.what, self.count, self.total, rate, eta)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _record_bytes(record: Record | ParsingRecord) -> bytes:
    if isinstance(record, Record) and record.image_bytes is not None:
        return record.image_bytes
    return _read_bytes(record.path)


def check_record(record: Record | ParsingRecord) -> CheckedImage:
    """Reads and checks one record's image (and mask); raises BadImageError."""
    try:
        data = _record_bytes(record)
    except FileNotFoundError:
        raise BadImageError(f"{REASON_MISSING}: {record.path}") from None
    except OSError as e:  # a folder named *.jpg, no permission, I/O error
        raise BadImageError(f"{REASON_UNREADABLE}: {e.strerror or e}") from None
    checked = check_image(data)
    if isinstance(record, ParsingRecord):
        try:
            mask = _read_bytes(record.mask_path)
        except FileNotFoundError:
            raise BadImageError(f"{REASON_MISSING}: mask {record.mask_relpath}") from None
        except OSError as e:
            raise BadImageError(f"{REASON_UNREADABLE}: mask {record.mask_relpath} ({e.strerror or e})") from None
        check_mask(mask, checked.height, checked.width)
    return checked


def _num_shards(num_images: int, num_shards: int | None) -> int:
    if num_shards is None:
        num_shards = math.ceil(num_images / IMAGES_PER_SHARD)
    return max(1, min(num_shards, max(num_images, 1)))


def _write_shards(directory: Path, split: str, examples: Iterable[tf.train.Example], num_images: int,
                  num_shards: int) -> list[str]:
    """Writes `examples` into `num_shards` contiguous shards, named `*.tmp` until the end."""
    names = [schema.shard_name(split, i, num_shards) for i in range(num_shards)]
    bounds = np.linspace(0, num_images, num_shards + 1).round().astype(int)
    iterator = iter(examples)
    for i, name in enumerate(names):
        tmp = directory / (name + ".tmp")
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for _ in range(bounds[i + 1] - bounds[i]):
                writer.write(next(iterator).SerializeToString())
    return names


def _json_options(options: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(options, sort_keys=True, default=str))


def _existing(final: Path, source_root: str, options: dict[str, Any], overwrite: bool) -> Manifest | None:
    """The finished manifest to reuse, or None to convert; raises on a conflicting folder."""
    if not final.exists():
        return None
    manifest_path = final / schema.MANIFEST_FILENAME
    if not manifest_path.is_file():
        if overwrite:
            return None
        raise FileExistsError(f"{final} exists but has no {schema.MANIFEST_FILENAME} (not a finished "
                              "conversion); remove it or pass overwrite=True (datasets/convert.py: "
                              "--overwrite)")
    with open(manifest_path) as f:
        manifest = json.load(f)
    if overwrite:
        return None
    found = (manifest.get("schema_version"), manifest.get("source_root"), manifest.get("reader_options"))
    wanted = (schema.SCHEMA_VERSION, source_root, options)
    if found != wanted:
        raise FileExistsError(
            f"{final} holds a conversion of (schema_version, source_root, reader_options)={found}, "
            f"not {wanted}; pass overwrite=True (datasets/convert.py: --overwrite) to replace it")
    logger.info("%s is already converted from %s; skipping (overwrite=True, datasets/convert.py: --overwrite, "
                "redoes it)", final, source_root)
    return load_manifest(final)


def _examples(info: registry.DatasetInfo, records: list, checked: list[CheckedImage],
              labels: dict[int, int] | None, progress: _Progress):
    for record, image in zip(records, checked):
        if image.encoded:
            encoded = image.encoded
        else:
            # Read again rather than hold a whole split in memory.
            encoded = _read_bytes(record.path)
            if len(encoded) != image.num_source_bytes:
                raise RuntimeError(f"{record.path} changed size during conversion")
        if info.kind == "parsing":
            example = schema.make_parsing_example(
                encoded=encoded, image_format=image.image_format, height=image.height, width=image.width,
                filename=record.relpath, mask_png=_read_bytes(record.mask_path))
        else:
            example = schema.make_reid_example(
                encoded=encoded, image_format=image.image_format, height=image.height, width=image.width,
                filename=record.relpath, label=labels[record.person_id] if labels is not None else -1,
                person_id=record.person_id, dataset=info.name, camera_id=record.camera_id)
        progress.step()
        yield example


def _convert_split(info: registry.DatasetInfo, split: str, records: list, directory: Path,
                   num_shards: int | None, skipped: list[dict], progress_every: int) -> dict:
    """Checks, labels, orders and writes one split; returns its manifest entry."""
    progress = _Progress(f"{info.name}/{split}: checked", len(records), progress_every)
    valid: list = []
    checked: list[CheckedImage] = []
    for record in records:
        try:
            image = check_record(record)
        except BadImageError as e:
            logger.warning("%s/%s: skipping %s (%s)", info.name, split, record.relpath, e.reason)
            skipped.append({"relpath": record.relpath, "reason": e.reason, "split": split})
        else:
            valid.append(record)
            # Keep bytes in memory only when they cannot simply be read again.
            keep = image.transcoded or getattr(record, "image_bytes", None) is not None
            checked.append(image if keep else dataclasses.replace(image, encoded=b""))
        progress.step()

    entry: dict[str, Any] = {"num_images": len(valid)}
    labels = None
    if info.kind == "reid":
        person_ids = sorted({r.person_id for r in valid})
        entry["num_ids"] = len(person_ids)
        entry["num_cameras"] = len({r.camera_id for r in valid})
        if split == info.train_split:
            labels = {pid: label for label, pid in enumerate(person_ids)}
            entry["label_to_person_id"] = person_ids
            order = sorted(range(len(valid)), key=lambda i: (valid[i].person_id, valid[i].relpath))
            order = [order[i] for i in np.random.default_rng(SHUFFLE_SEED).permutation(len(order))]
            valid = [valid[i] for i in order]
            checked = [checked[i] for i in order]
    n = _num_shards(len(valid), num_shards)
    progress = _Progress(f"{info.name}/{split}: wrote", len(valid), progress_every)
    entry["shards"] = _write_shards(directory, split, _examples(info, valid, checked, labels, progress),
                                    len(valid), n)
    transcoded = sum(image.transcoded for image in checked)
    if transcoded:
        entry["num_transcoded_to_png"] = transcoded
    if not valid:
        logger.warning("%s/%s: no valid images", info.name, split)
    return SplitEntry(**entry)


def convert_dataset(name: str, root: os.PathLike | str, output_dir: os.PathLike | str, *,
                    num_shards: int | None = None, overwrite: bool = False,
                    progress_every: int = 1000, **reader_options: Any) -> Manifest:
    """Converts benchmark `name` from raw folder `root` into `<output_dir>/<name>/`.

    Args:
        name: registry name (see registry.DATASETS).
        root: the raw benchmark folder (or the folder that holds it).
        output_dir: where the converted `<name>/` folder goes.
        num_shards: shards per split; None picks ~IMAGES_PER_SHARD images a shard.
        overwrite: replace an existing conversion (atomically).
        progress_every: log progress every this many images.
        **reader_options: passed to the reader (e.g. CUHK03's choices).

    Returns:
        The manifest (also written as `<output_dir>/<name>/manifest.json`).

    Raises:
        records.DatasetLayoutError: the raw folder lacks a path the reader needs.
        FileExistsError: a different conversion is in the way and overwrite is False.
    """
    info = registry.get(name)
    source_root = str(Path(root).absolute())
    output_dir = Path(output_dir)
    final = output_dir / name
    options = _json_options(reader_options)
    existing = _existing(final, source_root, options, overwrite)
    if existing is not None:
        return existing

    result: ReadResult = info.read(Path(root), **reader_options)
    missing = [s for s in info.splits if s not in result.splits]
    if missing:
        raise ValueError(f"{name}: reader returned splits {sorted(result.splits)}, missing {missing}")
    output_dir.mkdir(parents=True, exist_ok=True)
    stale = sorted(output_dir.glob(f".{name}.incomplete-*"))
    if stale:
        logger.warning("%s: found folders of interrupted conversions (safe to delete): %s",
                       name, [str(p) for p in stale])
    tmp = output_dir / f".{name}.incomplete-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        skipped = [{"relpath": s.relpath, "reason": s.reason, "split": None} for s in result.skipped]
        splits = {}
        for split, records in result.splits.items():
            splits[split] = _convert_split(info, split, records, tmp, num_shards, skipped, progress_every)
        by_reason: dict[str, int] = {}
        for s in skipped:
            key = s["reason"].split(":")[0]
            by_reason[key] = by_reason.get(key, 0) + 1
        manifest = Manifest(
            dataset=name, kind=info.kind, protocol=info.protocol(result.info), splits=splits,
            source_root=source_root, reader_options=options, skipped=tuple(skipped), skipped_by_reason=by_reason,
            info=result.info, url=info.url, reference=info.reference,
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            converter=f"spreid_tf {spreid_tf.__version__}")
        # Round trip: what is returned is what later reads get (JSON types, tuples).
        manifest = Manifest.from_json(manifest.to_json())
        # Only now do shards get their final names: a killed run leaves no `*.tfrecord`.
        for entry in splits.values():
            for shard in entry.shards:
                os.replace(tmp / (shard + ".tmp"), tmp / shard)
        write_manifest(tmp, manifest)
        _move_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("%s: wrote %s (%s; %d skipped)", name, final,
                ", ".join(f"{s}: {e.num_images} images" for s, e in splits.items()), len(skipped))
    return manifest


def _move_into_place(tmp: Path, final: Path) -> None:
    """Renames `tmp` to `final`; an old `final` is renamed aside first and deleted after."""
    if final.exists():
        aside = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(final, aside)
        try:
            os.rename(tmp, final)
        except BaseException:
            os.rename(aside, final)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(tmp, final)


def convert_merged(root: os.PathLike | str, output_dir: os.PathLike | str, *,
                   names: tuple[str, ...] = registry.MERGED_DATASETS, num_shards: int | None = None,
                   overwrite: bool = False, progress_every: int = 1000) -> merge.LabelMap:
    """Converts the merged training benchmarks and builds their label map.

    Args:
        root: folder holding one raw folder per benchmark, named as the registry
            names it (`<root>/market1501/`, `<root>/dukemtmcreid/`, ...); each is
            what that reader takes as root.
        output_dir: receives `<name>/` per benchmark and `label_map.json`.
        names: the benchmarks (default: the paper's ten).
        num_shards, overwrite, progress_every: as convert_dataset.

    Returns:
        The LabelMap written to `<output_dir>/label_map.json`.
    """
    unknown = [n for n in names if n not in registry.DATASETS]
    if unknown:
        raise KeyError(f"no reader registered for {unknown}; known: {sorted(registry.DATASETS)}")
    # Check every raw folder before the long conversions start.
    for name in names:
        if not (Path(root) / name).is_dir():
            raise _merged_layout_error(Path(root) / name, names)
    for name in names:
        info = registry.get(name)
        convert_dataset(name, Path(root) / name, output_dir, num_shards=num_shards, overwrite=overwrite,
                        progress_every=progress_every, **info.merge_options)
    return merge.build_label_map([Path(output_dir) / n for n in names],
                                 Path(output_dir) / merge.LABEL_MAP_FILENAME)


def _merged_layout_error(missing: Path, names: tuple[str, ...]) -> Exception:
    tree = "<root>/\n" + "\n".join(f"  {n}/    (raw {n}, as its reader's root)" for n in names)
    return layout_error(missing, tree)
