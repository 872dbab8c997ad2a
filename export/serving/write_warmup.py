r"""Writes TF Serving warm-up requests from real images into an exported SavedModel.

    python export/serving/write_warmup.py --saved_model=exports/spreid/1 \
        --images=data/samples --num_images=8 [--model_name=spreid]

`spreid_tf.export` already writes warm-up requests of synthetic JPEGs; this replaces
them with real images (first --num_images files of --images, sorted), one request of
one image and one of all of them per signature that takes image_bytes. Needs
tensorflow-serving-api. The file is written next to the SavedModel's assets, then
renamed over the old one.
"""

from __future__ import annotations

import os

from absl import app, flags, logging

from spreid_tf import cli

if __name__ == "__main__":
    cli.interrupt_quietly_while_loading()  # Ctrl-C while TensorFlow loads: one line

_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Exported version folder.", required=True)
_IMAGES = flags.DEFINE_string("images", None, "Folder, glob or list file of JPEG/PNG images.", required=True)
_NUM_IMAGES = flags.DEFINE_integer("num_images", 8, "How many images go into the requests.")
_MODEL_NAME = flags.DEFINE_string("model_name", "spreid", "Model name (as in models.config).")


def main(argv: list[str]) -> None:
    del argv
    cli.quiet_tensorflow_logs()  # a bad image is named in one line
    import tensorflow as tf

    from spreid_tf import export_lib, inference

    if not inference.is_saved_model(_SAVED_MODEL.value):
        raise FileNotFoundError(f"--saved_model={_SAVED_MODEL.value!r} is not a SavedModel folder (no "
                                "saved_model.pb; expected a version folder that spreid_tf.export writes)")
    source = inference.resolve_inputs(_IMAGES.value, "images")
    paths = source.paths[:_NUM_IMAGES.value]
    images = []
    for path in paths:
        with open(path, "rb") as f:
            images.append(f.read())
    loaded = tf.saved_model.load(_SAVED_MODEL.value)
    signatures = [name for name in (export_lib.SERVING_DEFAULT, export_lib.PARSE) if name in loaded.signatures]
    for name in signatures:  # fail here, naming the file, not at server start
        for path, image in zip(paths, images):
            try:
                loaded.signatures[name](image_bytes=tf.constant([image]))
            except tf.errors.InvalidArgumentError as e:
                reason = next((line.strip() for line in e.message.splitlines() if "failed" in line or "not a" in line),
                              "InvalidArgument")
                raise ValueError(f"{path}: the {name!r} signature cannot decode it ({reason}); "
                                 "leave it out of --images") from None
    folder = os.path.join(_SAVED_MODEL.value, export_lib.ASSETS_EXTRA)
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, export_lib.WARMUP_FILENAME)
    count = export_lib.write_warmup_requests(f"{target}.tmp", images, signatures, _MODEL_NAME.value)
    os.replace(f"{target}.tmp", target)
    logging.info("Wrote %d warm-up requests (%d images, signatures %s) to %s", count, len(images), signatures,
                 target)


if __name__ == "__main__":
    app.run(cli.one_line_errors(main))
