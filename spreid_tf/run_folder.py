"""The run folder (a training run's `model_dir`): what is in it, and loading what is in it.

    <model_dir>/
      config.json            the resolved config (training.config.write_config)
      checkpoint, ckpt-N.*   tf.train checkpoints (resumable)
      train/                 TensorBoard events
      model.keras            a re-id model (baseline or SPReID), written when training ends
      parsing.keras          a parsing model (train_parsing writes this instead)
      eval.json              training's end evaluation
      eval_<dataset>/        `python -m spreid_tf.evaluate`'s report
      features_<dataset>_<id>_<split>.npz   evaluate's feature caches

Everything that names these files, loads a model from a run folder or a `.keras` file,
tells a model's kind or reads its input size goes through here. Works with local paths and
any filesystem tf.io.gfile reads (gs://...). TensorFlow is imported only inside the
functions that need it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras

MODEL_FILENAME = "model.keras"
PARSING_FILENAME = "parsing.keras"
CONFIG_FILENAME = "config.json"
EVAL_FILENAME = "eval.json"
EVENTS_DIRNAME = "train"

# What a spreid_tf model is, from its outputs.
BASELINE, SPREID, PARSING = "baseline", "spreid", "parsing"
KINDS = (SPREID, BASELINE, PARSING)

# Output keys and the layer names other code looks up (the builders in spreid_tf.models give
# these names; export, evaluation and training find the layers by them).
EMBEDDING = "embedding"
LOGITS = "logits"
PROBABILITIES = "probabilities"
CLASSIFIER = "classifier"
SEMANTIC_MAPS = "semantic_maps"
PARSING_SOFTMAX = "parsing_softmax"
PARSING_STOP_GRADIENT = "parsing_stop_gradient"


def eval_report_dir(model_dir: str | os.PathLike, dataset: str) -> str:
    """Where `python -m spreid_tf.evaluate` writes its report for `dataset` by default."""
    return os.path.join(os.fspath(model_dir), f"eval_{dataset}")


def _exists(path: str) -> bool:
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def _is_dir(path: str) -> bool:
    import tensorflow as tf

    return tf.io.gfile.isdir(path)


def model_file(model_path: str | os.PathLike, filename: str = MODEL_FILENAME, flag: str | None = None) -> str:
    """A run folder (holding `filename`) or the path of a `.keras` file -> the `.keras` file.

    Args:
        model_path: a model_dir or a .keras file.
        filename: the file a model_dir holds: MODEL_FILENAME (re-id) or PARSING_FILENAME.
        flag: the command-line flag that gave `model_path`, named in the error.

    Raises:
        FileNotFoundError: naming the flag (if given), the path and what was expected.
    """
    given = os.fspath(model_path)
    path = os.path.join(given, filename) if _is_dir(given) else given
    if not _exists(path):
        source = f"--{flag}={given!r}" if flag else f"model {given!r}"
        what = f"{source} does not exist" if path == given else f"{source}: {path} does not exist"
        raise FileNotFoundError(f"{what} (expected a model_dir holding {filename}, which training writes "
                                "when it ends, or the path of a .keras file)")
    return path


def load_model(model_path: str | os.PathLike, filename: str = MODEL_FILENAME, flag: str | None = None
               ) -> keras.Model:
    """Loads a spreid_tf model from a run folder or a `.keras` file, without compiling it."""
    import spreid_tf.layers  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(model_file(model_path, filename, flag), compile=False)


def model_kind(model: keras.Model) -> str:
    """SPREID, BASELINE or PARSING, from the model's outputs and layers."""
    try:
        outputs = model.output if isinstance(model.output, dict) else {}
    except (AttributeError, ValueError):  # a model that was never called
        outputs = {}
    layer_names = {layer.name for layer in model.layers}
    if {EMBEDDING, LOGITS} <= set(outputs):
        return SPREID if SEMANTIC_MAPS in layer_names else BASELINE
    if {LOGITS, PROBABILITIES} <= set(outputs):
        return PARSING
    raise ValueError(
        f"model {model.name!r} is not a spreid_tf model: expected outputs "
        f"{{'{EMBEDDING}', '{LOGITS}'}} (build_spreid_model / build_baseline_model) or "
        f"{{'{LOGITS}', '{PROBABILITIES}'}} (build_parsing_model), got {sorted(outputs) or 'other outputs'}")


def model_image_size(model: keras.Model, image_size: Sequence[int] | None = None) -> tuple[int, int]:
    """The (height, width) images are resized to for `model`: its input size, or `image_size`.

    `image_size` is required for a model built with a dynamic input size (a bare parsing
    model built with (None, None, 3)); for a fixed-size model it must match.
    """
    height, width = model.input_shape[1:3]
    if image_size is not None:
        size = tuple(int(v) for v in image_size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"image_size must be (height, width), got {image_size!r}")
        if (height, width) != (None, None) and size != (height, width):
            raise ValueError(f"image_size {size} differs from the model's input size {(height, width)}")
        return size
    if height is None or width is None:
        raise ValueError(f"model {model.name!r} takes inputs of any size {model.input_shape}; "
                         "pass image_size=(height, width)")
    return int(height), int(width)
