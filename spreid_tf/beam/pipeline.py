"""Feature extraction as an Apache Beam pipeline: the SavedModel over image files or re-id TFRecords.

    Create(work units) -> Reshuffle -> ParDo(ExtractShard) -> one .npz shard per unit
                                                           -> ToList -> the report, last

A work unit (`shards.plan_shards`) is `images_per_shard` image files or one TFRecord
file. `ExtractShard` loads the SavedModel once per worker process (`beam.utils.shared`:
the threads of a Python worker share it) and runs batch_infer's own extraction,
`inference.extract_features`, over its unit: the same tf.data decoding and resizing as
evaluation, the same batching, the same skip rules and reasons. Shard after shard,
the embeddings, filenames and skipped inputs are batch_infer.py's, in its order
(`shards.load_sharded_features` joins them).

Outputs are atomic: a local shard is written by `inference.save_features` (a temporary
file renamed into place); a remote one (gs://, through TensorFlow's file systems, which
also read the inputs and the SavedModel) is uploaded from a local temporary file, and a
Cloud Storage object appears whole when it is closed. The report is written after
every shard, so a failed pipeline leaves no report; a retried unit rewrites the same
shard. Before a run, the report and shards of an earlier run at the same --output are
deleted, so a stale report can never describe a mix of runs.

Inputs must be readable from the workers: local paths for the DirectRunner; a shared
filesystem or gs:// (through TensorFlow's file system, as `tf.io.read_file` reads
them) for a cluster. A remote input is a glob (`gs://bucket/crops/*.jpg`,
`gs://bucket/market1501/gallery-*.tfrecord`); local inputs take everything batch_infer
takes (folder, glob, list file, TFRecords).
"""

from __future__ import annotations

import json
import logging as std_logging
import os
import tempfile
import time
from collections.abc import Sequence


def _not_bigquery_client_notice(record: std_logging.LogRecord) -> bool:
    return not record.getMessage().startswith("apitools not found")


# Beam's GCP modules log at import that the BigQuery client libraries are missing ("apitools not
# found" through the root logger, "ReadFromBigQuery ... CANNOT be used" through the bigquery
# module's): nothing here reads BigQuery, so those two lines would only alarm. Only the import is
# filtered; later warnings show.
_bigquery_logger = std_logging.getLogger("apache_beam.io.gcp.bigquery")
_bigquery_level = _bigquery_logger.level
_bigquery_logger.setLevel(std_logging.WARNING)
std_logging.getLogger().addFilter(_not_bigquery_client_notice)
try:
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options import pipeline_options
    from apache_beam.runners.runner import PipelineResult, PipelineState
    from apache_beam.utils import shared
except ModuleNotFoundError as error:  # the base install: name the extra (tests run it with Beam blocked)
    if error.name is None or not error.name.startswith("apache_beam"):
        raise
    raise ModuleNotFoundError(
        'spreid_tf.beam needs Apache Beam, the optional extra "beam": pip install -e ".[beam]"',
        name=error.name) from error
finally:
    std_logging.getLogger().removeFilter(_not_bigquery_client_notice)
    _bigquery_logger.setLevel(_bigquery_level)

import tensorflow as tf
from absl import logging

from spreid_tf import atomic, inference
from spreid_tf.beam import shards

METRICS_NAMESPACE = "spreid_tf"


def is_remote(path: str) -> bool:
    """True for a URI such as gs://bucket/x (read and written through `tf.io.gfile`)."""
    return "://" in path


def resolve_inputs(spec: str, input_format: str = "auto") -> inference.InputSource:
    """batch_infer's `inference.resolve_inputs` for local inputs; a glob for remote ones.

    Raises:
        FileNotFoundError: nothing matches `spec` (the message names it).
    """
    if not is_remote(spec):
        return inference.resolve_inputs(spec, input_format)
    if input_format == "list":
        raise ValueError(f"--input={spec!r}: a list file must be local; give a glob of the remote files")
    matches = sorted(tf.io.gfile.glob(spec))
    if not matches:
        raise FileNotFoundError(f"no files match input {spec!r}")
    records = input_format == "tfrecord" or (input_format == "auto" and all(map(inference.is_tfrecord, matches)))
    return inference.resolve_inputs(matches, "tfrecord" if records else "images")


def _write(path: str, data: bytes) -> None:
    """Writes `data` to a local path atomically, or creates a remote object (whole on close)."""
    if is_remote(path):
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(data)
    else:
        atomic.write_bytes(path, data)


def _save_features(path: str, features: inference.Features) -> None:
    if not is_remote(path):
        inference.save_features(path, features)
        return
    with tempfile.TemporaryDirectory() as folder:  # the same writer, then one upload
        local = os.path.join(folder, os.path.basename(path))
        inference.save_features(local, features)
        with open(local, "rb") as f:
            _write(path, f.read())


class _Model:
    """A weak-referenceable holder, as `beam.utils.shared.Shared` requires."""

    def __init__(self, embedder: inference.Embedder):
        self.embedder = embedder


class ExtractShard(beam.DoFn):
    """(shard index, input paths) -> writes `<stem>-<index>-of-<n>.npz`, yields the shard's summary."""

    def __init__(self, saved_model: str, kind: str, stem: str, num_shards: int, batch_size: int,
                 num_parallel_calls: int, log_every_s: float):
        self._saved_model = saved_model
        self._kind = kind
        self._stem = stem
        self._num_shards = num_shards
        self._batch_size = batch_size
        self._num_parallel_calls = num_parallel_calls
        self._log_every_s = log_every_s
        self._shared = shared.Shared()
        self._model: _Model | None = None
        self._images = Metrics.counter(METRICS_NAMESPACE, "images")
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "skipped")
        self._done = Metrics.counter(METRICS_NAMESPACE, "shards")

    def setup(self) -> None:
        self._model = self._shared.acquire(lambda: _Model(inference.load_embedder(self._saved_model)))

    def process(self, unit):  # (shard index, paths); no annotations: Beam would log each as a type hint
        index, paths = unit
        embedder = self._model.embedder
        name = f"shard {index + 1}/{self._num_shards}"
        source = inference.InputSource(self._kind, tuple(paths), name)
        # One unit of many with nothing readable is a shard with no rows (a run where no shard has
        # rows fails when the report is written).
        features = inference.extract_features(
            embedder, source, batch_size=self._batch_size, num_parallel_calls=self._num_parallel_calls,
            log_every_s=self._log_every_s, name=name, allow_empty=True)
        path = shards.shard_path(self._stem, index, self._num_shards)
        _save_features(path, features)
        self._images.inc(len(features.filenames))
        self._skipped.inc(len(features.skipped))
        self._done.inc()
        yield {"index": index, "shard": os.path.basename(path), "images": int(len(features.filenames)),
               "embedding_dim": int(features.embeddings.shape[1]), "seconds": features.seconds,
               "skipped": [{"filename": f, "reason": r} for f, r in features.skipped]}


def _write_report(summaries, stem, num_shards, config, start):
    """Checks every shard is there and writes the report (summaries: ExtractShard's dicts)."""
    summaries = sorted(summaries, key=lambda s: s["index"])
    if [s["index"] for s in summaries] != list(range(num_shards)):
        raise RuntimeError(f"{stem}: {len(summaries)} of {num_shards} shards were written")
    images = sum(s["images"] for s in summaries)
    skipped = [entry for s in summaries for entry in s["skipped"]]
    if images == 0:
        first = f" ({skipped[0]['filename']}: {skipped[0]['reason']})" if skipped else ""
        raise ValueError(f"{config['input']}: none of the {len(skipped)} inputs could be read{first}")
    seconds = time.time() - start
    report = {
        "config": config,
        "features": {  # the keys of inference.features_report, over the whole run
            "images": images,
            "embedding_dim": max(s["embedding_dim"] for s in summaries),
            "seconds": round(seconds, 3),
            "images_per_second": round(images / seconds, 2) if seconds > 0 else 0.0,
            "skipped": skipped,
            "skipped_count": len(skipped),
        },
        "shards": [s["shard"] for s in summaries],
        "worker_seconds": round(sum(s["seconds"] for s in summaries), 3),
    }
    _write(shards.report_path(stem), json.dumps(report, indent=2).encode())
    logging.info("%s: %d images in %d shards, %d skipped, %.1f s", stem, images, num_shards, len(skipped), seconds)
    return report


def build_pipeline(pipeline: beam.Pipeline, saved_model: str, source: inference.InputSource, output: str, *,
                   batch_size: int = inference.DEFAULT_BATCH_SIZE,
                   images_per_shard: int = shards.DEFAULT_IMAGES_PER_SHARD,
                   num_parallel_calls: int = tf.data.AUTOTUNE, log_every_s: float = 30.0,
                   config: dict | None = None) -> beam.PCollection:
    """Adds the extraction to `pipeline`; returns the PCollection of the report (one dict).

    Args:
        pipeline: a `beam.Pipeline` (its options choose the runner).
        saved_model: the SavedModel folder (from spreid_tf.export), readable by the workers.
        source: what to read (`resolve_inputs`).
        output: `<stem>.npz`: shards `<stem>-0000i-of-0000N.npz` and the report `<stem>.json`.
        batch_size: images per model call.
        images_per_shard: image files per work unit and shard (TFRecords: one file a unit).
        num_parallel_calls: decode parallelism within a worker (-1: autotune).
        log_every_s: seconds between a worker's progress lines within a shard.
        config: recorded in the report.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    units = shards.plan_shards(source.kind, source.paths, images_per_shard)
    stem = shards.output_stem(output)
    config = dict(config or {}, saved_model=saved_model, output=output, num_shards=len(units))
    config.setdefault("input", source.description)
    start = time.time()
    summaries = (pipeline
                 | "Units" >> beam.Create(units)
                 | "Distribute" >> beam.Reshuffle()
                 | "Extract" >> beam.ParDo(ExtractShard(saved_model, source.kind, stem, len(units), batch_size,
                                                        num_parallel_calls, log_every_s)))
    return (summaries
            | "Collect" >> beam.combiners.ToList()
            | "Report" >> beam.Map(_write_report, stem=stem, num_shards=len(units), config=config, start=start))


def check_pipeline_args(args: Sequence[str]) -> None:
    """Refuses arguments that no Beam PipelineOptions class knows (Beam itself would only warn)."""
    parser = pipeline_options._BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in pipeline_options.PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(args))
    if unknown:
        raise ValueError(f"unknown flags {unknown}: neither this tool's flags nor Apache Beam pipeline options "
                         "(--runner, --project, --region, --temp_location, --flink_master, --spark_master_url, ...)")


def remove_previous_output(output: str) -> None:
    """Deletes the report and shards of an earlier run at `output` (the report first)."""
    stem = shards.output_stem(output)
    report = shards.report_path(stem)
    if tf.io.gfile.exists(report):
        tf.io.gfile.remove(report)
    for stale in tf.io.gfile.glob(f"{stem}-?????-of-?????.npz"):
        tf.io.gfile.remove(stale)


def run_extraction(saved_model: str, input_spec: str, output: str, *, input_format: str = "auto",
                   batch_size: int = inference.DEFAULT_BATCH_SIZE,
                   images_per_shard: int = shards.DEFAULT_IMAGES_PER_SHARD,
                   num_parallel_calls: int = tf.data.AUTOTUNE, log_every_s: float = 30.0,
                   pipeline_args: Sequence[str] = (), config: dict | None = None) -> dict:
    """Resolves the inputs, runs the pipeline to the end and returns the report. A failed or
    interrupted run cancels the job and deletes the shards it wrote.

    Args:
        pipeline_args: Beam pipeline options, e.g. ["--runner=DataflowRunner", "--project=p", ...].
    """
    check_pipeline_args(pipeline_args)
    options = pipeline_options.PipelineOptions(list(pipeline_args))
    if "Dataflow" in (options.view_as(pipeline_options.StandardOptions).runner or ""):
        for flag, value in (("saved_model", saved_model), ("input", input_spec), ("output", output)):
            if not is_remote(value):
                raise ValueError(f"--{flag}={value!r} is a local path, which Dataflow workers cannot see: "
                                 "give a gs:// path")
    if not is_remote(saved_model) and not inference.is_saved_model(saved_model):
        raise FileNotFoundError(f"--saved_model={saved_model!r} is not a SavedModel folder (no saved_model.pb; "
                                "expected a version folder that spreid_tf.export writes, e.g. exports/spreid/1)")
    source = resolve_inputs(input_spec, input_format)
    config = dict(config or {}, input=input_spec, input_format=input_format, batch_size=batch_size,
                  images_per_shard=images_per_shard, pipeline_args=list(pipeline_args))
    remove_previous_output(output)
    units = len(shards.plan_shards(source.kind, source.paths, images_per_shard))
    logging.info("%s: %d inputs (%s) in %d shards -> %s", input_spec, len(source.paths), source.kind, units,
                 shards.output_stem(output))
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, saved_model, source, output, batch_size=batch_size, images_per_shard=images_per_shard,
                   num_parallel_calls=num_parallel_calls, log_every_s=log_every_s, config=config)
    result = None
    try:
        result = pipeline.run()  # the local runners return when done; a cluster's runner at once
        _follow(result, units, log_every_s)
        state = result.wait_until_finish()
        if state != PipelineState.DONE:
            raise RuntimeError(f"the pipeline ended {state}, not DONE")
    except BaseException:
        # A failed run writes no report; its finished shards go too, so nothing is left at --output.
        if result is not None and not PipelineState.is_terminal(result.state):
            result.cancel()
        remove_previous_output(output)
        raise
    with tf.io.gfile.GFile(shards.report_path(shards.output_stem(output))) as f:
        return json.load(f)


def _counters(result: PipelineResult) -> dict[str, int]:
    """This pipeline's counters so far (0 where the runner reports none while it runs)."""
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 - some runners answer only at the end; progress is best effort
        return {}
    return {c.key.metric.name: int(c.committed if c.committed is not None else c.attempted or 0) for c in found}


def _follow(result: PipelineResult, num_shards: int, log_every_s: float) -> None:
    """Logs shards done, images, images/s and an ETA while a runner that returns at once works."""
    start, state = time.time(), result.state  # each look asks the runner (Dataflow: its API)
    while not PipelineState.is_terminal(state):
        time.sleep(log_every_s if log_every_s > 0 else 30.0)
        state = result.state
        counts, elapsed = _counters(result), time.time() - start
        done, images = counts.get("shards", 0), counts.get("images", 0)
        eta = f", ETA {inference.format_eta((num_shards - done) * elapsed / done)}" if done else ""
        logging.info("%s: %d/%d shards, %d images, %.1f img/s, %d skipped%s", state, done, num_shards, images,
                     images / elapsed, counts.get("skipped", 0), eta)
