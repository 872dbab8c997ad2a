"""Convert the SPReID authors' released weights to Keras files of our models (no Chainer needed).

    # their parser trained on LIP -> a parsing model for --parsing_model= and evaluate --dataset=lip
    python -m spreid_tf.convert_weights --chainer_parsing_model=LIP_iter_30000.chainermodel \
        --output=/runs/authors_parser/parsing.keras
    # their ImageNet InceptionV3 initialisation (data/dump/<layer>.h5) -> --weights= of
    # --backbone=inception_v3_authors (train and train_parsing)
    python -m spreid_tf.convert_weights --authors_dump_dir=data/dump \
        --output=/weights/inception_v3_authors.weights.h5

The parser becomes `build_parsing_model(backbone="inception_v3_authors")` (any input size)
carrying the checkpoint's every convolution and batch norm; the dump becomes the weights of
`build_backbone("inception_v3_authors")`, from which the dilated network copies its own.
The output is written atomically; an existing file is kept unless --overwrite. A missing or
misshapen link or layer file ends in one line naming it and the file
(spreid_tf.models.authors_weights).
"""

from __future__ import annotations

import os
import tempfile

from absl import app, flags, logging

from spreid_tf import cli

if __name__ == "__main__":
    cli.interrupt_quietly_while_loading()  # Ctrl-C while TensorFlow loads: one line

from spreid_tf import atomic  # noqa: E402

FLAGS = flags.FLAGS
PARSING_SUFFIX = ".keras"
WEIGHTS_SUFFIX = ".weights.h5"


def define_convert_weights_flags() -> None:
    flags.DEFINE_string("chainer_parsing_model", None, "The authors' parser, LIP_iter_30000.chainermodel "
                        "(Chainer save_hdf5); written as a .keras parsing model.")
    flags.DEFINE_string("authors_dump_dir", None, "The authors' ImageNet InceptionV3 initialisation, a folder of "
                        "<layer>.h5 files (data/dump); written as the .weights.h5 of --backbone=inception_v3_authors.")
    flags.DEFINE_string("output", None, f"The file to write: {PARSING_SUFFIX} for --chainer_parsing_model, "
                        f"{WEIGHTS_SUFFIX} for --authors_dump_dir.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
    flags.mark_flags_as_required(["output"])


def _check_arguments(chainer_parsing_model: str | None, authors_dump_dir: str | None, output: str,
                     overwrite: bool) -> str:
    if (chainer_parsing_model is None) == (authors_dump_dir is None):
        raise ValueError("give exactly one of --chainer_parsing_model (the authors' LIP parser) and "
                         "--authors_dump_dir (their ImageNet InceptionV3 dump)")
    suffix = PARSING_SUFFIX if chainer_parsing_model else WEIGHTS_SUFFIX
    if not output.endswith(suffix):
        raise ValueError(f"--output={output}: expected a file name ending in {suffix} for "
                         f"{'--chainer_parsing_model' if chainer_parsing_model else '--authors_dump_dir'}")
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(f"--output={output} exists; pass --overwrite to replace it")
    return suffix


def _save_atomically(save, output: str, suffix: str) -> None:
    """`save(path)` into a temporary sibling (Keras wants the suffix), renamed over `output`."""
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(output)}.", suffix=".tmp" + suffix, dir=folder)
    os.close(fd)
    try:
        save(tmp)
        os.chmod(tmp, atomic.file_mode())
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def convert(chainer_parsing_model: str | None = None, authors_dump_dir: str | None = None, *, output: str,
            overwrite: bool = False) -> str:
    """Converts one of the authors' weight files to `output` (see the module docstring); returns `output`."""
    suffix = _check_arguments(chainer_parsing_model, authors_dump_dir, output, overwrite)
    from spreid_tf.models import authors_weights, build_backbone, build_parsing_model
    from spreid_tf.models.applications import INCEPTION_V3_AUTHORS

    if chainer_parsing_model:
        model = build_parsing_model(backbone=INCEPTION_V3_AUTHORS, input_shape=(None, None, 3))
        count = authors_weights.load_chainer_parsing_model(chainer_parsing_model, model)
        logging.info("Read %d tensors from %s", count, chainer_parsing_model)
        _save_atomically(model.save, output, suffix)
    else:
        model = build_backbone(INCEPTION_V3_AUTHORS, input_shape=(None, None, 3))
        count = authors_weights.load_authors_dump(authors_dump_dir, model)
        logging.info("Read %d tensors from %s", count, authors_dump_dir)
        _save_atomically(model.save_weights, output, suffix)
    logging.info("Wrote %s", output)
    return output


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments: {' '.join(argv[1:])}")
    convert(FLAGS.chainer_parsing_model, FLAGS.authors_dump_dir, output=FLAGS.output, overwrite=FLAGS.overwrite)


if __name__ == "__main__":
    define_convert_weights_flags()
    app.run(cli.one_line_errors(main))
