r"""Feature extraction with Apache Beam: sharded .npz files of embeddings and a skip report.

    python export/beam_extract.py --saved_model=exports/spreid/1 --input=DIR|GLOB|LIST|TFRECORDS \
        --output=out/features.npz [--batch_size=256] [--images_per_shard=4096] [Beam options...]

Writes out/features-0000i-of-0000N.npz (batch_infer.py's .npz format, one per work unit,
in input order) and, after all of them, out/features.json (the config, counts, speed and
every skipped input with its reason). Every flag this tool does not define is a Beam
pipeline option, passed through: --runner (DirectRunner by default), --project, --region,
--temp_location, --flink_master, --spark_master_url, --setup_file, --sdk_container_image,
--direct_num_workers, ...; BUILD.md shows the command lines for Dataflow, Flink and Spark.
Needs the optional extra: pip install -e ".[beam]".
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from spreid_tf import cli
from spreid_tf.beam import shards

FLAGS = flags.FLAGS
BEAM_EXTRA = 'Apache Beam is not installed: pip install -e ".[beam]" (the optional extra "beam")'


def define_flags() -> None:
    """Flags of the Beam extraction binary (Beam's own options pass through)."""
    flags.DEFINE_string("saved_model", None, "SavedModel folder written by spreid_tf.export (readable by the "
                        "workers).", required=True)
    flags.DEFINE_string("input", None, "Image folder, glob, list file or TFRecords (remote: a glob, e.g. "
                        "gs://bucket/crops/*.jpg).", required=True)
    flags.DEFINE_enum("input_format", "auto", ["auto", "images", "list", "tfrecord"], "How to read --input.")
    flags.DEFINE_string("output", None, "<stem>.npz: shards <stem>-0000i-of-0000N.npz and the report <stem>.json.",
                        required=True)
    flags.DEFINE_integer("batch_size", 256, "Images per model call.")
    flags.DEFINE_integer("images_per_shard", shards.DEFAULT_IMAGES_PER_SHARD,
                         "Image files per work unit and output shard (TFRecord input: one file a unit).")
    flags.DEFINE_integer("num_parallel_calls", -1, "Decode parallelism within a worker (-1: autotune).")
    flags.DEFINE_float("log_every_s", 30.0, "Seconds between a worker's progress lines within a shard.")


def main(argv: list[str]) -> None:
    pipeline_args = argv[1:]  # what absl did not know: Beam's pipeline options
    cli.quiet_tensorflow_logs()  # the skip report names each image that does not decode
    try:
        from spreid_tf.beam import pipeline
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("apache_beam"):
            raise
        print(f"error: {BEAM_EXTRA}", file=sys.stderr, flush=True)
        sys.exit(2)
    import tensorflow as tf

    config = {name: FLAGS[name].value for name in ("saved_model", "input", "input_format", "output", "batch_size",
                                                   "images_per_shard")}
    report = pipeline.run_extraction(
        FLAGS.saved_model, FLAGS.input, FLAGS.output, input_format=FLAGS.input_format, batch_size=FLAGS.batch_size,
        images_per_shard=FLAGS.images_per_shard,
        num_parallel_calls=tf.data.AUTOTUNE if FLAGS.num_parallel_calls < 0 else FLAGS.num_parallel_calls,
        log_every_s=FLAGS.log_every_s, pipeline_args=pipeline_args, config=config)
    if report is not None:
        counts = report["features"]
        logging.info("Wrote %d shards of %s (%d embeddings, %d skipped) and %s", len(report["shards"]),
                     shards.output_stem(FLAGS.output), counts["images"], counts["skipped_count"],
                     shards.report_path(shards.output_stem(FLAGS.output)))


def parse_flags(argv: list[str]) -> list[str]:
    """absl parses this tool's flags and leaves the rest (Beam's options) in argv for main; a bad or
    missing flag of ours ends as absl's own parser ends it (one line, status 1)."""
    try:
        return FLAGS(argv, known_only=True)
    except flags.Error as error:
        print(f"FATAL Flags parsing error: {error}\nPass --helpshort or --helpfull to see help on flags.",
              file=sys.stderr, flush=True)
        sys.exit(1)


def run() -> None:
    """Entry point: `python -m spreid_tf.beam.extract` and export/beam_extract.py."""
    define_flags()
    app.run(cli.one_line_errors(main), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
