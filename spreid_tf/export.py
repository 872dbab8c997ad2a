r"""Exports a trained model as a SavedModel for TF Serving.

    python -m spreid_tf.export --model_dir=runs/market_spreid --output=exports/spreid/1

Loads `model_dir/model.keras` and writes the version folder `output` (atomically) with
the signatures `serving_default` (image_bytes -> l2-normalised embedding),
`embed_images`, `embed_images_uint8` and, for SPReID and parsing models, `parse`;
see `spreid_tf.export_lib` for their inputs and outputs.
"""

from __future__ import annotations

import os

from absl import app, flags, logging

from spreid_tf import cli

if __name__ == "__main__":
    cli.interrupt_quietly_while_loading()  # Ctrl-C while TensorFlow loads: one line

FLAGS = flags.FLAGS


def define_export_flags() -> None:
    """Flags of the export binary."""
    flags.DEFINE_string("model_dir", None, "Folder holding model.keras, or a .keras file.", required=True)
    flags.DEFINE_string("output", None, "Version folder to write, e.g. exports/spreid/1.", required=True)
    flags.DEFINE_list("image_size", None, "H,W to decode to (default: the model's input size; "
                      "required for parsing models with a dynamic input size).")
    flags.DEFINE_enum("mixed_precision", None, ["mixed_float16", "mixed_bfloat16"],
                      "Compute policy baked into the SavedModel (outputs stay float32).")
    flags.DEFINE_string("model_name", "spreid", "Model name used in the warm-up requests (models.config).")
    flags.DEFINE_integer("warmup_images", 3, "Synthetic JPEGs in the TF Serving warm-up requests; 0: none.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output folder.")


def main(argv: list[str]) -> None:
    del argv
    from spreid_tf import export_lib  # after flag parsing: importing TensorFlow is slow

    if not os.path.basename(os.path.normpath(FLAGS.output)).isdigit():
        logging.warning("TF Serving only loads numeric version folders (<base_path>/<version>); "
                        "%s does not end in one", FLAGS.output)
    image_size = [int(v) for v in FLAGS.image_size] if FLAGS.image_size else None
    path = export_lib.export_saved_model(
        FLAGS.model_dir, FLAGS.output, image_size=image_size, mixed_precision=FLAGS.mixed_precision,
        model_name=FLAGS.model_name, warmup_images=FLAGS.warmup_images, overwrite=FLAGS.overwrite)
    logging.info("Wrote SavedModel %s", path)


def run() -> None:
    """Entry point: `python -m spreid_tf.export` and export/export.py."""
    define_export_flags()
    app.run(cli.one_line_errors(main))


if __name__ == "__main__":
    run()
