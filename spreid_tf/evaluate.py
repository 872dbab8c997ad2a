"""Evaluate a trained model on a converted benchmark.

    python -m spreid_tf.evaluate --model_dir=runs/spreid --data_dir=/data/tfrecords \
        --dataset=market1501 [--rerank] [--combine=runs/baseline]
    python -m spreid_tf.evaluate --model_dir=runs/parsing --data_dir=/data/tfrecords --dataset=lip

Re-id: features are extracted once and cached in each model_dir; results.json,
results.md, cmc.png, ranked/*.png and parsing/*.png go to --output_dir (default
<model_dir>/eval_<dataset>). LIP: pixel accuracy, mean accuracy and mean IoU of
<model_dir>/parsing.keras on the val split.
"""

from __future__ import annotations

import json
import logging as std_logging
from pathlib import Path

from absl import app, flags, logging

from spreid_tf import cli

if __name__ == "__main__":
    cli.interrupt_quietly_while_loading()  # Ctrl-C while TensorFlow loads: one line

from spreid_tf import atomic, evaluation, run_folder  # noqa: E402
from spreid_tf.data.manifest import split_shards  # noqa: E402

FLAGS = flags.FLAGS


def define_evaluate_flags() -> None:
    flags.DEFINE_string("model_dir", None, "Folder holding model.keras (re-id) or parsing.keras (LIP).")
    flags.DEFINE_string("data_dir", None, "Folder holding the converted benchmarks (<data_dir>/<dataset>/).")
    flags.DEFINE_string("dataset", "market1501", "Converted benchmark to evaluate on; 'lip' scores parsing.")
    flags.DEFINE_string("output_dir", None, "Where reports go (default <model_dir>/eval_<dataset>).")
    flags.DEFINE_bool("rerank", False, "Also report k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3).")
    flags.DEFINE_multi_string("combine", [], "Other model_dirs whose embeddings are l2-normalised and "
                              "concatenated with this model's (the paper's combined rows).")
    flags.DEFINE_enum("metric", evaluation.DEFAULT_METRIC, ["euclidean", "sqeuclidean", "cosine"],
                      "Distance between the l2-normalised embeddings (all three rank alike).")
    flags.DEFINE_integer("batch_size", evaluation.reid.DEFAULT_BATCH_SIZE, "Images per forward pass.")
    flags.DEFINE_bool("cache", True, "Reuse cached features (model_dir/features_<dataset>_<id>_<split>.npz).")
    flags.DEFINE_list("queries", [], "Query filenames to draw ranked lists for (default: the worst).")
    flags.DEFINE_integer("num_worst", 5, "Ranked lists for this many worst queries.")
    flags.DEFINE_list("crop_size", ["512", "512"], "LIP: images are fitted and padded to this size.")
    flags.mark_flags_as_required(["model_dir", "data_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    std_logging.getLogger("spreid_tf").setLevel(std_logging.INFO)
    converted = Path(FLAGS.data_dir) / FLAGS.dataset
    if not converted.is_dir() and (Path(FLAGS.data_dir) / "manifest.json").is_file():
        raise ValueError(f"--data_dir={FLAGS.data_dir} is itself a conversion; --data_dir is the folder holding "
                         f"them: pass --data_dir={Path(FLAGS.data_dir).parent} (and --dataset)")
    output_dir = Path(FLAGS.output_dir or run_folder.eval_report_dir(FLAGS.model_dir, FLAGS.dataset))
    if FLAGS.dataset == "lip":
        model = run_folder.load_model(FLAGS.model_dir, run_folder.PARSING_FILENAME, flag="model_dir")
        scores = evaluation.evaluate_parsing(model, split_shards(converted, "val"),
                                               tuple(int(v) for v in FLAGS.crop_size), FLAGS.batch_size)
        atomic.write_text(output_dir / "results.json", json.dumps(scores, indent=2))
        print(f"LIP val: pixel accuracy {100 * scores['pixel_accuracy']:.2f}, mean accuracy "
              f"{100 * scores['mean_accuracy']:.2f}, mean IoU {100 * scores['mean_iou']:.2f}")
        return
    evaluation.evaluate_run(
        FLAGS.model_dir, converted, output_dir, combine_dirs=FLAGS.combine, rerank_results=FLAGS.rerank,
        metric=FLAGS.metric, batch_size=FLAGS.batch_size, use_cache=FLAGS.cache, queries=FLAGS.queries,
        num_worst=FLAGS.num_worst)
    print((output_dir / "results.md").read_text())
    logging.info("reports in %s", output_dir)


if __name__ == "__main__":
    define_evaluate_flags()
    app.run(cli.one_line_errors(main))
