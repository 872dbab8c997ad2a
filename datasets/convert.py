"""Converts a raw benchmark into TFRecord shards + manifest.json (thin wrapper).

    python datasets/convert.py --dataset=market1501 --root=/data/raw/Market-1501-v15.09.15 \
        --output_dir=/data/tfrecords
    python datasets/convert.py --dataset=all10 --root=/data/raw --output_dir=/data/tfrecords

`--dataset=all10` converts the paper's ten training benchmarks from `<root>/<name>/`
(market1501, dukemtmcreid, cuhk03, cuhk01, cuhk02, viper, prid2011, 3dpes, cuhksysu,
shinpuhkan) with each one's merge options, and writes `<output_dir>/label_map.json`.
See datasets/<name>/README.md for each raw layout.
"""

from __future__ import annotations

import json
import logging as std_logging

from absl import app, flags, logging

from spreid_tf import cli

cli.quiet_tensorflow_logs()  # the converter names each bad image itself
if __name__ == "__main__":
    cli.interrupt_quietly_while_loading()  # Ctrl-C while TensorFlow loads: one line

from spreid_tf.data import convert, registry  # noqa: E402

FLAGS = flags.FLAGS
ALL10 = "all10"


def define_convert_flags() -> None:
    flags.DEFINE_string("dataset", None, f"Registry name ({', '.join(sorted(registry.DATASETS))}) or "
                        f"'{ALL10}'.", required=True)
    flags.DEFINE_string("root", None, "Raw benchmark folder (for all10: the folder holding <name>/ each).",
                        required=True)
    flags.DEFINE_string("output_dir", None, "Receives <dataset>/ with shards and manifest.json.", required=True)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing conversion (atomically).")
    flags.DEFINE_integer("num_shards", None, "Shards per split (default: ~4096 images a shard).")
    flags.DEFINE_integer("progress_every", 1000, "Log progress every this many images.")
    flags.DEFINE_multi_string("reader_option", [], "key=value passed to the reader (value parsed as JSON "
                              "when it can be), e.g. --reader_option=include_val=false.")


def parse_reader_options(items: list[str]) -> dict:
    """["a=1", "b=x"] -> {"a": 1, "b": "x"}."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise app.UsageError(f"--reader_option must be key=value, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    std_logging.getLogger("spreid_tf").setLevel(std_logging.INFO)
    if FLAGS.dataset == ALL10:
        if FLAGS.reader_option:
            raise app.UsageError("--reader_option applies to one dataset, not all10")
        label_map = convert.convert_merged(FLAGS.root, FLAGS.output_dir, num_shards=FLAGS.num_shards,
                                           overwrite=FLAGS.overwrite, progress_every=FLAGS.progress_every)
        logging.info("label map %s: %d identities, %d images", label_map.path, label_map.num_identities,
                     label_map.num_images)
        return
    manifest = convert.convert_dataset(
        FLAGS.dataset, FLAGS.root, FLAGS.output_dir, num_shards=FLAGS.num_shards, overwrite=FLAGS.overwrite,
        progress_every=FLAGS.progress_every, **parse_reader_options(FLAGS.reader_option))
    for split, entry in manifest.splits.items():
        logging.info("%s/%s: %d images, %s identities, %s cameras", FLAGS.dataset, split, entry.num_images,
                     entry.num_ids, entry.num_cameras)
    logging.info("%d files skipped: %s; scored with the %s protocol", manifest.num_skipped,
                 manifest.skipped_by_reason, manifest.protocol)


if __name__ == "__main__":
    define_convert_flags()
    app.run(cli.one_line_errors(main))
