"""Batch feature extraction: images or TFRecords -> l2-normalised embeddings in an .npz.

Inputs (`resolve_inputs`):
    DIR        every *.jpg, *.jpeg, *.png (any case) below it, sorted
    GLOB       image files matching it, sorted ("*.tfrecord" globs read records)
    LIST       a .txt/.lst file, one image path a line (relative to the list's folder)
    TFRECORDS  re-id shards in `spreid_tf.data.schema` (a *.tfrecord file or glob, or
               a folder of them); filenames, person ids, cameras and datasets are kept

Images are read and decoded in parallel by tf.data, exactly as in evaluation
(`pipelines.decode_image`, `pipelines.resize_uint8` to the model's input size),
batched large, and sent to the model as uint8 (four times smaller host-to-device
copies than float32). A file or record that cannot be read or decoded (missing,
empty, corrupt) is skipped, not fatal: the pipeline drops it
(`Dataset.ignore_errors`), the gap in the element indices identifies it, and a
second look at just those items gives the reason. TFRecord streams end with a
sentinel element, so failures at the end are counted too. A corrupt TFRecord file
(as opposed to a bad image inside a good one) is not handled this way.

Models (`load_embedder`): a SavedModel from `spreid_tf.export_lib` (its
`embed_images_uint8` signature) or a Keras model (model_dir or .keras file) wrapped
in the same `ServingModule`, so both give the same l2-normalised embedding. Mixed
precision only applies to Keras models: a SavedModel's precision was fixed when it
was exported (`export --mixed_precision=...`).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from spreid_tf import atomic, run_folder
from spreid_tf.data import image_formats, pipelines, schema
from spreid_tf.data.manifest import load_manifest

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
LIST_EXTENSIONS = (".txt", ".lst")
DEFAULT_BATCH_SIZE = 256
INPUT_FORMATS = ("auto", "images", "list", "tfrecord")


# -------------------------------------------------------------------------- inputs


@dataclasses.dataclass(frozen=True)
class InputSource:
    """What to read: image files, or re-id TFRecord files."""

    kind: str  # "images" or "tfrecord"
    paths: tuple[str, ...]
    description: str


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def is_tfrecord(path: str) -> bool:
    """True for a converted shard (`*.tfrecord` or TFRecordWriter-style `*.tfrecord-NNNNN-of-NNNNN`)."""
    return path.endswith(schema.SHARD_SUFFIX) or ".tfrecord-" in os.path.basename(path)


def _read_list(path: str) -> list[str]:
    base = os.path.dirname(os.path.abspath(path))
    with open(path) as f:
        lines = [line.strip() for line in f]
    return [line if os.path.isabs(line) else os.path.join(base, line)
            for line in lines if line and not line.startswith("#")]


def resolve_inputs(spec: str | os.PathLike | Sequence[str], input_format: str = "auto") -> InputSource:
    """Turns a folder, glob, list file, TFRecord path/glob or list of paths into an InputSource.

    Args:
        spec: see the module docstring; a Python sequence is taken as image paths.
        input_format: "auto" (guess from `spec`), "images", "list" or "tfrecord".

    Raises:
        FileNotFoundError: nothing matches `spec` (the message names it).
    """
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
    if not isinstance(spec, (str, os.PathLike)):
        paths = [os.fspath(p) for p in spec]
        if not paths:
            raise ValueError("the list of input images is empty")
        return InputSource("tfrecord" if input_format == "tfrecord" else "images", tuple(paths),
                           f"{len(paths)} paths")
    spec = os.fspath(spec)
    if input_format == "list" or (input_format == "auto" and os.path.isfile(spec)
                                  and spec.lower().endswith(LIST_EXTENSIONS)):
        paths = _read_list(spec)
        if not paths:
            raise FileNotFoundError(f"image list {spec!r} names no files")
        return InputSource("images", tuple(paths), spec)
    if os.path.isdir(spec):
        files = sorted(os.path.join(root, name) for root, _, names in os.walk(spec) for name in names)
        records = [f for f in files if is_tfrecord(f)]
        images = [f for f in files if _is_image(f)]
        if input_format == "tfrecord" or (input_format == "auto" and records and not images):
            if not records:
                raise FileNotFoundError(f"no *{schema.SHARD_SUFFIX} files in folder {spec!r}")
            return InputSource("tfrecord", tuple(records), spec)
        if not images:
            raise FileNotFoundError(f"no {'/'.join(IMAGE_EXTENSIONS)} images in folder {spec!r}")
        return InputSource("images", tuple(images), spec)
    matches = sorted(glob.glob(spec, recursive=True)) if glob.has_magic(spec) else \
        ([spec] if os.path.exists(spec) else [])
    if not matches:
        raise FileNotFoundError(f"no files match input {spec!r}")
    if input_format == "tfrecord" or (input_format == "auto" and all(is_tfrecord(m) for m in matches)):
        return InputSource("tfrecord", tuple(matches), spec)
    return InputSource("images", tuple(m for m in matches if not os.path.isdir(m)), spec)


def _sentinel_record() -> bytes:
    """A valid re-id record marking the end of a TFRecord stream (its index = the count)."""
    png = tf.io.encode_png(tf.zeros([1, 1, 3], tf.uint8)).numpy()
    example = schema.make_reid_example(encoded=png, image_format="png", height=1, width=1, filename="",
                                       label=-1, person_id=-1, dataset="", camera_id=-1)
    return example.SerializeToString()


def image_dataset(
    source: InputSource,
    image_size: Sequence[int],
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_parallel_calls: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Batches of {"index", "image" uint8 (B, H, W, 3), "filename", ...} in input order.

    TFRecord batches also carry "person_id", "camera_id", "dataset" and "sentinel"
    (True only for the end marker). Elements that fail to read or decode are
    dropped; their indices are missing from the "index" sequence.
    """
    size = (int(image_size[0]), int(image_size[1]))

    def finish(image: tf.Tensor) -> tf.Tensor:
        image = pipelines.resize_uint8(pipelines.decode_image(image), size)
        image.set_shape([*size, 3])
        return image

    if source.kind == "images":
        ds = tf.data.Dataset.from_tensor_slices(list(source.paths)).enumerate()
        ds = ds.map(lambda i, path: {"index": i, "filename": path, "image": finish(tf.io.read_file(path))},
                    num_parallel_calls=num_parallel_calls, deterministic=True)
    else:
        records = tf.data.TFRecordDataset(list(source.paths)).map(lambda r: (r, False))
        end = tf.data.Dataset.from_tensors((tf.constant(_sentinel_record()), True))
        ds = records.concatenate(end).enumerate()

        def parse(i: tf.Tensor, element: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
            serialized, sentinel = element
            features = schema.parse_reid_example(serialized)
            return {
                "index": i,
                "sentinel": sentinel,
                "filename": features[schema.IMAGE_FILENAME],
                "person_id": tf.cast(features[schema.PERSON_ID], tf.int32),
                "camera_id": tf.cast(features[schema.CAMERA_ID], tf.int32),
                "dataset": features[schema.PERSON_DATASET],
                "image": finish(features[schema.IMAGE_ENCODED]),
            }

        ds = ds.map(parse, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.ignore_errors()
    ds = ds.batch(batch_size, drop_remainder=False)
    options = tf.data.Options()
    options.deterministic = True
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


# -------------------------------------------------------------------------- models


@dataclasses.dataclass
class Embedder:
    """A model as a function: uint8 images (B, H, W, 3) at `image_size` -> float32 (B, D)."""

    fn: Callable[[tf.Tensor], tf.Tensor]
    image_size: tuple[int, int]
    description: str

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        return self.fn(images)


def is_saved_model(path: str | os.PathLike) -> bool:
    """True for a folder holding saved_model.pb (or .pbtxt)."""
    path = os.fspath(path)
    return os.path.isdir(path) and any(
        os.path.isfile(os.path.join(path, name)) for name in ("saved_model.pb", "saved_model.pbtxt"))


def load_embedder(path: str | os.PathLike, mixed_precision: str | None = None) -> Embedder:
    """Loads a SavedModel (from `export_lib`) or a Keras model (model_dir or .keras file).

    Args:
        path: SavedModel folder, model_dir holding model.keras, or a .keras file.
        mixed_precision: None, "mixed_float16" or "mixed_bfloat16"; Keras models only
            (a SavedModel's precision is fixed at export: re-export with it instead).
    """
    # export_lib imports Keras and the model code, which a SavedModel does not need.
    from spreid_tf import export_lib

    path = os.fspath(path)
    if is_saved_model(path):
        if mixed_precision:
            raise ValueError(
                f"{path} is a SavedModel: its precision was fixed when it was exported; export it "
                f"again with mixed_precision={mixed_precision!r}, or pass the Keras model instead")
        loaded = tf.saved_model.load(path)
        if export_lib.EMBED_IMAGES_UINT8 not in loaded.signatures:
            raise ValueError(f"SavedModel {path} has no {export_lib.EMBED_IMAGES_UINT8!r} signature "
                             f"(signatures: {sorted(loaded.signatures)}); export it with spreid_tf.export")
        signature = loaded.signatures[export_lib.EMBED_IMAGES_UINT8]
        height, width = (int(v) for v in loaded.image_size().numpy())

        def run(images: tf.Tensor) -> tf.Tensor:
            return signature(images=images)[export_lib.EMBEDDING]

        run.loaded = loaded  # type: ignore[attr-defined]  # keeps the SavedModel alive
        return Embedder(run, (height, width), f"SavedModel {path}")
    model = run_folder.load_model(path, flag="model")
    if run_folder.model_kind(model) == run_folder.PARSING:
        raise ValueError(f"{path} is a parsing model: it has no embedding to extract")
    if mixed_precision:
        export_lib.apply_mixed_precision(model, mixed_precision)
    module = export_lib.ServingModule(model)

    def run_keras(images: tf.Tensor) -> tf.Tensor:
        return module.embed_images_uint8(images)[export_lib.EMBEDDING]

    run_keras.module = module  # type: ignore[attr-defined]
    precision = f", {mixed_precision}" if mixed_precision else ""
    return Embedder(run_keras, module.size, f"Keras model {path}{precision}")


# -------------------------------------------------------------------------- results


@dataclasses.dataclass
class Features:
    """Embeddings of the readable inputs, in input order, and what was skipped."""

    embeddings: np.ndarray  # float32 (N, D), l2-normalised
    filenames: np.ndarray  # str (N,)
    person_ids: np.ndarray | None = None  # int32 (N,), TFRecord inputs only
    camera_ids: np.ndarray | None = None
    datasets: np.ndarray | None = None
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (filename, reason)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return len(self.filenames) / self.seconds if self.seconds > 0 else 0.0


def _why_image_fails(data: bytes | None, read_error: str | None = None) -> str:
    if read_error is not None:
        return read_error
    if not data:
        return "empty file (0 bytes)"
    try:
        pipelines.decode_image(tf.constant(data))
    except tf.errors.OpError as error:
        return f"cannot decode: {image_formats.decoder_message(error)}"
    return "could not be read or decoded"


def diagnose_files(paths: Sequence[str]) -> list[tuple[str, str]]:
    """(path, why it does not decode) for each of `paths`: the skip list's reasons."""
    reasons = []
    for path in paths:
        try:
            if "://" in path:  # gs://, ram://...: TensorFlow's file systems, as the pipeline reads them
                with tf.io.gfile.GFile(path, "rb") as f:
                    data = f.read()
            else:
                with open(path, "rb") as f:
                    data = f.read()
        except OSError as error:
            reasons.append((path, f"cannot read: {error.strerror or error}"))
            continue
        except tf.errors.OpError as error:  # some file systems give no message: say what a local one says
            missing = "No such file or directory" if isinstance(error, tf.errors.NotFoundError) else ""
            reasons.append((path, f"cannot read: {error.message.strip() or missing or type(error).__name__}"))
            continue
        reasons.append((path, _why_image_fails(data)))
    return reasons


def diagnose_records(files: Sequence[str], indices: set[int]) -> list[tuple[str, str]]:
    """(record name, why its image does not decode) for the records at `indices` of `files`."""
    reasons = []
    wanted = tf.constant(sorted(indices), tf.int64)
    ds = tf.data.TFRecordDataset(list(files)).enumerate()
    ds = ds.filter(lambda i, _: tf.reduce_any(tf.equal(wanted, i)))
    for index, serialized in ds:
        try:
            features = schema.parse_reid_example(serialized)
        except tf.errors.OpError as error:
            reasons.append((f"record {int(index)}", f"not a re-id Example: {image_formats.decoder_message(error)}"))
            continue
        name = features[schema.IMAGE_FILENAME].numpy().decode("utf-8", "replace")
        reasons.append((name or f"record {int(index)}", _why_image_fails(features[schema.IMAGE_ENCODED].numpy())))
    return reasons


def converted_record_count(paths: Sequence[str]) -> int | None:
    """The number of records in `paths` if they are whole splits of converted datasets (their
    manifest.json says), else None (counting would mean reading every file once more)."""
    by_folder: dict[str, set[str]] = {}
    for path in paths:
        by_folder.setdefault(os.path.dirname(os.path.abspath(path)), set()).add(os.path.basename(path))
    total = 0
    for folder, names in by_folder.items():
        try:
            splits = load_manifest(folder).splits
        except (FileNotFoundError, ValueError):  # not a conversion, or an old one: no count
            return None
        covered = set()
        for entry in splits.values():
            shards = set(entry.shards)
            if shards and shards <= names:
                total += entry.num_images
                covered |= shards
        if covered != names:  # a shard outside any whole split: its count is unknown
            return None
    return total


def format_eta(seconds: float) -> str:
    """`1m05s`, or `2h03m` from an hour on."""
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def extract_features(
    embedder: Embedder,
    source: InputSource,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    log_every_s: float = 10.0,
    name: str = "features",
    allow_empty: bool = False,
) -> Features:
    """Runs `embedder` over every readable input of `source`, skipping bad images.

    Logs progress (images, images/s, skipped so far) every `log_every_s` seconds and
    a warning per skipped input (with the reason).

    Raises:
        ValueError: none of the inputs could be read, unless `allow_empty` (one unit of a
            sharded extraction): then the result has no rows and every input skipped.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    ds = image_dataset(source, embedder.image_size, batch_size, num_parallel_calls)
    total = len(source.paths) if source.kind == "images" else converted_record_count(source.paths)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in ("embedding", "index", "filename", "person_id",
                                                            "camera_id", "dataset")}
    count = 0
    end_index = None
    start = last_log = time.perf_counter()

    def collect(embedding: tf.Tensor, batch: dict[str, tf.Tensor]) -> None:
        nonlocal count, end_index
        keep = np.ones(len(batch["index"]), bool)
        if "sentinel" in batch:
            sentinel = batch["sentinel"].numpy()
            if sentinel.any():
                end_index = int(batch["index"].numpy()[sentinel][0])
            keep = ~sentinel
        chunks["embedding"].append(embedding.numpy()[keep])
        for key in ("index", "filename", "person_id", "camera_id", "dataset"):
            if key in batch:
                chunks[key].append(batch[key].numpy()[keep])
        count += int(keep.sum())

    pending = None
    for batch in ds:
        # Launch this batch before waiting for the previous one's result.
        embedding = embedder(batch["image"])
        if pending is not None:
            collect(*pending)
        pending = (embedding, batch)
        now = time.perf_counter()
        if log_every_s and now - last_log >= log_every_s and count:  # not before the first result
            last_log = now
            seen = int(batch["index"].numpy()[-1]) + 1
            rate = count / (now - start)
            done = f"{count}/{total}" if total else str(count)
            eta = f", ETA {format_eta((total - seen) / rate)}" if total else ""
            logging.info("%s: %s images, %.1f img/s%s, %d skipped so far", name, done, rate, eta,
                         seen - count - len(batch["index"]))
    if pending is not None:
        collect(*pending)
    seconds = time.perf_counter() - start

    indices = np.concatenate(chunks["index"]) if chunks["index"] else np.zeros([0], np.int64)
    expected = total if total is not None else end_index
    if expected is None:
        raise RuntimeError(f"{source.description}: the TFRecord stream ended early (a corrupt file?)")
    missing = sorted(set(range(expected)) - set(indices.tolist()))
    if source.kind == "images":
        skipped = diagnose_files([source.paths[i] for i in missing])
    else:
        skipped = diagnose_records(source.paths, set(missing)) if missing else []
    for filename, reason in skipped:
        logging.warning("%s: skipped %s: %s", name, filename, reason)
    if count == 0:
        if not allow_empty:
            first = f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""
            raise ValueError(f"{source.description}: none of the {expected} inputs could be read{first}")
        dim = int(embedder(tf.zeros([1, *embedder.image_size, 3], tf.uint8)).shape[-1])
        features = Features(embeddings=np.zeros([0, dim], np.float32), filenames=np.array([], str),
                            skipped=skipped, seconds=seconds)
        if source.kind == "tfrecord":
            features.person_ids = np.zeros([0], np.int32)
            features.camera_ids = np.zeros([0], np.int32)
            features.datasets = np.array([], str)
        return features
    filenames = np.concatenate(chunks["filename"])
    if filenames.dtype.kind in "SO":
        filenames = np.array([f.decode("utf-8", "replace") if isinstance(f, bytes) else f for f in filenames])
    features = Features(
        embeddings=np.concatenate(chunks["embedding"]).astype(np.float32),
        filenames=filenames.astype(str),
        skipped=skipped,
        seconds=seconds,
    )
    if source.kind == "tfrecord":
        features.person_ids = np.concatenate(chunks["person_id"]).astype(np.int32)
        features.camera_ids = np.concatenate(chunks["camera_id"]).astype(np.int32)
        features.datasets = np.array([d.decode("utf-8") for d in np.concatenate(chunks["dataset"])]).astype(str)
    logging.info("%s: %d images in %.1f s (%.1f img/s), %d skipped", name, count, seconds,
                 features.images_per_second, len(skipped))
    return features


# --------------------------------------------------------------------------- output


def save_features(path: str | os.PathLike, features: Features) -> None:
    """Writes an .npz atomically: embeddings, filenames, skipped_filenames, skipped_reasons,
    and person_ids, camera_ids, datasets for TFRecord inputs."""
    arrays = {
        "embeddings": features.embeddings,
        "filenames": features.filenames,
        "skipped_filenames": np.array([f for f, _ in features.skipped], dtype=str),
        "skipped_reasons": np.array([r for _, r in features.skipped], dtype=str),
    }
    for key in ("person_ids", "camera_ids", "datasets"):
        value = getattr(features, key)
        if value is not None:
            arrays[key] = value
    with atomic.atomic_file(path) as f:
        np.savez(f, **arrays)


def load_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads an .npz written by `save_features` into a dict of arrays.

    The --output of export/beam_extract.py works too (its shards `<stem>-NNNNN-of-NNNNN.npz`
    and report `<stem>.json` stand where batch_infer.py writes `<stem>.npz`): the shards are
    read into the same dict (`spreid_tf.beam.shards.load_sharded_features`).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        from spreid_tf.beam import shards  # no Apache Beam: numpy and json only

        report = shards.report_path(shards.output_stem(path))
        if os.path.isfile(report):
            with open(report) as f:
                sharded = "shards" in json.load(f)
            if sharded:
                return shards.load_sharded_features(path)
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def search_gallery(query: Features, gallery: Features, top_k: int = 10) -> list[dict]:
    """Top-k gallery matches of each query, nearest first, by the package's evaluation distance
    (`spreid_tf.evaluation.protocols`: euclidean between l2-normalised embeddings), by brute force.

    Returns:
        One dict per query: {"query", ["person_id", "camera_id"],
        "matches": [{"rank", "filename", "distance", ["person_id", "camera_id"]}]}.
    """
    from spreid_tf.evaluation import protocols

    if query.embeddings.shape[1] != gallery.embeddings.shape[1]:
        raise ValueError(f"query embeddings are {query.embeddings.shape[1]}-D, gallery ones "
                         f"{gallery.embeddings.shape[1]}-D: use the same model")
    indices, distances = protocols.nearest(query.embeddings, gallery.embeddings, top_k)
    return _search_results(query, indices, distances, gallery.filenames, gallery.person_ids, gallery.camera_ids)


def search_index(query: Features, index, top_k: int = 10) -> list[dict]:
    """Like `search_gallery`, in a `spreid_tf.search.SearchIndex` (faiss; exact or approximate).

    Matches the index could not fill (an approximate index can return fewer than top_k) are left out.
    """
    if index.filenames is None:
        raise ValueError("the search index has no filenames beside it: build it with filenames to name matches")
    distances, rows = index.search(query.embeddings, top_k)
    return _search_results(query, rows, distances, index.filenames, index.person_ids, index.camera_ids)


def _search_results(query: Features, indices: np.ndarray, distances: np.ndarray, filenames: np.ndarray,
                    person_ids: np.ndarray | None, camera_ids: np.ndarray | None) -> list[dict]:
    results = []
    for q, (order, row) in enumerate(zip(indices, distances)):
        entry: dict = {"query": str(query.filenames[q])}
        if query.person_ids is not None:
            entry.update(person_id=int(query.person_ids[q]), camera_id=int(query.camera_ids[q]))
        matches = []
        for rank, (g, distance) in enumerate(zip(order, row), 1):
            if g < 0:  # nothing found for this rank (approximate index)
                break
            match = {"rank": rank, "filename": str(filenames[g]), "distance": float(distance)}
            if person_ids is not None:
                match["person_id"] = int(person_ids[g])
            if camera_ids is not None:
                match["camera_id"] = int(camera_ids[g])
            matches.append(match)
        entry["matches"] = matches
        results.append(entry)
    return results


def save_search_results(path: str | os.PathLike, results: list[dict]) -> None:
    """Writes search results atomically: JSON, or CSV (query, rank, filename, distance) for *.csv."""
    path = os.fspath(path)
    with atomic.atomic_file(path, "w") as f:
        if not path.lower().endswith(".csv"):
            json.dump(results, f, indent=1)
            return
        writer = csv.writer(f)
        writer.writerow(["query", "rank", "filename", "distance"])
        for entry in results:
            for match in entry["matches"]:
                writer.writerow([entry["query"], match["rank"], match["filename"], f"{match['distance']:.6f}"])


def write_report(path: str | os.PathLike, report: dict) -> None:
    """Writes a JSON report (config, counts, speed, skipped inputs) atomically."""
    atomic.write_text(path, json.dumps(report, indent=2))


def features_report(features: Features) -> dict:
    """Counts, speed and the skipped inputs with reasons, for `write_report`."""
    return {
        "images": int(len(features.filenames)),
        "embedding_dim": int(features.embeddings.shape[1]),
        "seconds": round(features.seconds, 3),
        "images_per_second": round(features.images_per_second, 2),
        "skipped": [{"filename": f, "reason": r} for f, r in features.skipped],
        "skipped_count": len(features.skipped),
    }
