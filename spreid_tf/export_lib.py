"""SavedModel export of SPReID, baseline and parsing models for TF Serving.

`export_saved_model` wraps a Keras model in a `tf.Module` (`ServingModule`) with
explicit `tf.function` signatures and writes it with `tf.saved_model.save`:

    serving_default     image_bytes string [N] (JPEG or PNG; GIF/BMP decode too)
                        -> embedding float32 [N, D]          (re-id models)
                        -> semantic_maps, labels             (bare parsing model)
    embed_images        images float32 [N, h, w, 3], RGB 0-255 -> embedding [N, D]
    embed_images_uint8  images uint8   [N, h, w, 3]           -> embedding [N, D]
    parse               image_bytes string [N] -> semantic_maps float32 [N, h16, w16, 5],
                        labels int32 [N, H, W]         (SPReID and parsing models)

- Images given as bytes are decoded and resized in-graph exactly as in evaluation
  (`pipelines.decode_image` then `pipelines.resize_uint8` to the model's input size,
  uint8): the SavedModel and `eval_dataset` see the same pixels.
- `embed_images*` accept any h, w: an image batch not at the model's input size is
  resized in-graph (bilinear, half-pixel centres, no antialiasing); uint8 batches are
  rounded back to uint8 as in evaluation, float32 batches are not rounded.
- `embedding` is the model's embedding (the features before the classifier) divided
  by its l2 norm (epsilon 1e-12), so the cosine similarity is a dot product and
  several models' embeddings concatenate like `combine_embeddings`.
- `semantic_maps`: the five grouped parsing maps in `lip.GROUP_NAMES` order
  (foreground, head, upper body, lower body, shoes), sums of LIP probabilities in
  [0, 1] on the parsing grid (output stride 16) that SPReID pools with, before the
  l1-normalisation. `labels`: argmax over the 20 LIP labels of the parsing
  probabilities at the input size (the parsing model's "probabilities" output).
- All float outputs are float32, also for mixed-precision models; no XLA
  (`jit_compile=False`), so the graph runs on TF Serving's stock kernels.
- The module also has a no-argument function `image_size()` -> int32 [2] (H, W).

The export is written to a temporary sibling folder and renamed into place, with
`assets.extra/tf_serving_warmup_requests` (TF Serving replays them at load time) and
`assets.extra/spreid_export.json` (what was exported, for people).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

import spreid_tf
import spreid_tf.layers  # noqa: F401  (registers the custom layers for load_model)
from spreid_tf import atomic, lip, run_folder
from spreid_tf.data import image_formats, pipelines
from spreid_tf.layers import GroupLIPProbabilities, SemanticPooling, group_lip_probabilities

SERVING_DEFAULT = "serving_default"
EMBED_IMAGES = "embed_images"
EMBED_IMAGES_UINT8 = "embed_images_uint8"
PARSE = "parse"
IMAGE_BYTES = "image_bytes"
IMAGES = "images"
EMBEDDING = run_folder.EMBEDDING
SEMANTIC_MAPS = run_folder.SEMANTIC_MAPS
LABELS = "labels"
ASSETS_EXTRA = "assets.extra"
WARMUP_FILENAME = "tf_serving_warmup_requests"
METADATA_FILENAME = "spreid_export.json"
DEFAULT_MODEL_NAME = "spreid"
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")

# Layers the builders make float32 on purpose (outputs, softmax, the parsing maps and
# the pooling they weight); `apply_mixed_precision` leaves them float32.
FLOAT32_LAYER_NAMES = frozenset(
    {"embedding", "logits", "concat", "parsing_softmax", "semantic_maps", "semantic_pooling",
     "upsample", "probabilities"}
)
_FLOAT32_LAYER_TYPES = (GroupLIPProbabilities, SemanticPooling)

# Signatures each kind of model gets.
SIGNATURES = {
    run_folder.BASELINE: (SERVING_DEFAULT, EMBED_IMAGES, EMBED_IMAGES_UINT8),
    run_folder.SPREID: (SERVING_DEFAULT, EMBED_IMAGES, EMBED_IMAGES_UINT8, PARSE),
    run_folder.PARSING: (SERVING_DEFAULT, PARSE),
}



def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def apply_mixed_precision(model: keras.Model, policy: str = "mixed_float16") -> keras.Model:
    """Switches a float32 model's layers to a mixed policy in place, for inference.

    Layers the builders make float32 on purpose (`FLOAT32_LAYER_NAMES`, the parsing
    maps and semantic pooling) stay float32, so the model computes as if it had been
    built under `keras.mixed_precision.set_global_policy(policy)`. Variables stay
    float32; layers that already have a non-float32 policy are left alone.

    Returns:
        `model`, whose layer policies now equal those of the same model built under
        the global policy `policy`.
    """
    if policy not in MIXED_PRECISION_POLICIES:
        raise ValueError(f"mixed precision policy must be one of {MIXED_PRECISION_POLICIES}, got {policy!r}")
    for layer in _all_layers(model):
        if layer.name in FLOAT32_LAYER_NAMES or isinstance(layer, _FLOAT32_LAYER_TYPES):
            continue
        if layer.dtype_policy.name == "float32":
            layer.dtype_policy = policy
    return model


# ------------------------------------------------------------------ serving module


def decode_and_resize(image_bytes: tf.Tensor, image_size: Sequence[int]) -> tf.Tensor:
    """string [N] -> uint8 [N, H, W, 3], decoded and resized exactly as in evaluation.

    Accepts what evaluation's `tf.io.decode_image` accepts (JPEG, PNG, GIF, BMP,
    WebP, JPEG XL; first frame of animations). An input that does not decode (empty,
    an unknown format, corrupt or truncated data) raises, at run time, one
    InvalidArgumentError naming its position, `image_bytes[i]`, and how many failed.

    The images are decoded in a tf.data pipeline that drops the failures
    (`ignore_errors`): a decoder's own error cannot carry the position, the list of
    survivors can. Valid inputs decode exactly as before.
    """
    height, width = int(image_size[0]), int(image_size[1])
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    count = tf.size(image_bytes, out_type=tf.int64)

    def one(data: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return index, pipelines.resize_uint8(pipelines.decode_image(data), (height, width))

    decoded = (tf.data.Dataset.from_tensor_slices((image_bytes, tf.range(count)))
               .map(one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .ignore_errors())
    # A leading placeholder keeps the batch non-empty when every image fails.
    placeholder = tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), tf.zeros([height, width, 3], tf.uint8)))
    indices, images = placeholder.concatenate(decoded).batch(count + 1).get_single_element()
    indices, images = indices[1:], images[1:]
    failed = tf.sparse.to_dense(tf.sets.difference(tf.range(count)[None], indices[None]))[0]
    first = tf.concat([failed, [0]], 0)[0]
    data = tf.concat([image_bytes, [b""]], 0)[first]
    # Padded so that substr never reads past the end of a short input (an error).
    head = tf.strings.substr(tf.strings.join([data, b"\0" * 16]), 0, 16)
    webp = ((tf.strings.substr(head, 0, 4) == image_formats.WEBP_RIFF)
            & (tf.strings.substr(head, 8, 4) == image_formats.WEBP_TAG))
    known = tf.reduce_any([tf.strings.substr(head, 0, len(m)) == m
                           for prefixes in image_formats.MAGIC.values() for m in prefixes] + [webp])
    reason = tf.where(known, " starts like an image but its data does not decode (corrupt or truncated)",
                      " is not a JPEG or PNG image (nor another format tf.io.decode_image reads)")
    # The first bytes as numbers: raw bytes in an error message are not valid UTF-8.
    message = tf.strings.join([
        tf.strings.format("image_bytes[{}]", first), reason,
        tf.strings.format(": {} bytes, first bytes {}; {} of {} images failed to decode: {}",
                          (tf.strings.length(data), tf.io.decode_raw(tf.strings.substr(data, 0, 8), tf.uint8),
                           tf.size(failed), count, failed), summarize=20)])
    check = tf.debugging.Assert(tf.equal(tf.size(failed), 0), [message])
    with tf.control_dependencies([check]):
        images = tf.identity(images)
    return tf.ensure_shape(images, [None, height, width, 3])


def _resize_if_needed(images: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    same = tf.reduce_all(tf.equal(tf.shape(images)[1:3], size))
    if images.dtype == tf.uint8:
        resize = lambda: pipelines.resize_uint8(images, size)  # noqa: E731
    else:
        resize = lambda: tf.image.resize(images, size, method="bilinear", antialias=False)  # noqa: E731
    resized = tf.cond(same, lambda: tf.identity(images), resize)
    return tf.ensure_shape(resized, [None, *size, 3])


def _parsing_outputs_model(model: keras.Model, kind: str) -> keras.Model:
    """A model sharing `model`'s layers: {"logits": stride-16 LIP logits, "semantic_maps"}."""
    if kind == run_folder.PARSING:
        return keras.Model(model.input, {run_folder.LOGITS: model.output[run_folder.LOGITS]}, name="parse_outputs")
    try:
        logits = model.get_layer(run_folder.PARSING_STOP_GRADIENT).output
        maps = model.get_layer(run_folder.SEMANTIC_MAPS).output
    except ValueError as error:
        raise ValueError(f"SPReID model {model.name!r} lacks the layers 'parsing_stop_gradient' and "
                         "'semantic_maps' that build_spreid_model creates") from error
    return keras.Model(model.input, {run_folder.LOGITS: logits, SEMANTIC_MAPS: maps}, name="parse_outputs")


class _Untracked:
    """Hides an object from SavedModel tracking (a plain Python attribute holder)."""

    def __init__(self, value):
        self.value = value


class ServingModule(tf.Module):
    """Holds a spreid_tf Keras model and its serving functions (see the module docstring).

    Attributes named after the signatures (`serving_default`, `embed_images`,
    `embed_images_uint8`, `parse`) are tf.functions with fixed input signatures;
    `signatures()` maps signature names to them for `tf.saved_model.save`.

    Only the model's variables are tracked, not the Keras objects (as Keras'
    ExportArchive does): SavedModel saving would otherwise trace every nested
    Keras model's `_default_save_signature`, which is slow and fails for models
    with a dynamic input size.
    """

    def __init__(self, model: keras.Model, image_size: Sequence[int] | None = None):
        super().__init__(name="spreid_serving")
        self.kind = run_folder.model_kind(model)
        self.size = run_folder.model_image_size(model, image_size)
        self._keras = _Untracked({"model": model})
        self.model_variables = list(model.variables)
        height, width = self.size
        self.image_size = tf.function(lambda: tf.constant([height, width], tf.int32), input_signature=[])
        bytes_spec = tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)
        if self.kind != run_folder.PARSING:
            self._embed = tf.function(
                self._embed_fn, input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)],
                jit_compile=False)
            self.embed_images = tf.function(
                self._embed_images_fn, jit_compile=False,
                input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=IMAGES)])
            self.embed_images_uint8 = tf.function(
                self._embed_images_fn, jit_compile=False,
                input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=IMAGES)])
            self.serving_default = tf.function(self._embed_bytes_fn, input_signature=[bytes_spec],
                                               jit_compile=False)
        if self.kind != run_folder.BASELINE:
            self._keras.value["parse_model"] = _parsing_outputs_model(model, self.kind)
            self.parse = tf.function(self._parse_bytes_fn, input_signature=[bytes_spec], jit_compile=False)
            if self.kind == run_folder.PARSING:
                self.serving_default = self.parse

    @property
    def model(self) -> keras.Model:
        """The Keras model."""
        return self._keras.value["model"]

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """Signature name -> concrete function, for `tf.saved_model.save(signatures=...)`."""
        return {name: getattr(self, name).get_concrete_function() for name in SIGNATURES[self.kind]}

    def _embed_fn(self, images: tf.Tensor) -> tf.Tensor:
        embedding = self.model(images, training=False)[EMBEDDING]
        return tf.math.l2_normalize(tf.cast(embedding, tf.float32), axis=-1, epsilon=1e-12)

    def _embed_images_fn(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        images = _resize_if_needed(images, self.size)
        return {EMBEDDING: self._embed(tf.cast(images, tf.float32))}

    def _embed_bytes_fn(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        images = decode_and_resize(image_bytes, self.size)
        return {EMBEDDING: self._embed(tf.cast(images, tf.float32))}

    def _parse_bytes_fn(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        images = tf.cast(decode_and_resize(image_bytes, self.size), tf.float32)
        outputs = self._keras.value["parse_model"](images, training=False)
        logits = tf.cast(outputs[run_folder.LOGITS], tf.float32)
        if "semantic_maps" in outputs:
            maps = tf.cast(outputs["semantic_maps"], tf.float32)
        else:
            maps = group_lip_probabilities(tf.nn.softmax(logits, axis=-1))
        # As the parsing model's "probabilities": bilinear upsampling of the logits,
        # then softmax, whose argmax is the argmax of the upsampled logits.
        upsampled = tf.image.resize(logits, self.size, method="bilinear", antialias=False)
        labels = tf.argmax(upsampled, axis=-1, output_type=tf.int32)
        return {SEMANTIC_MAPS: tf.ensure_shape(maps, [None, None, None, lip.NUM_GROUPS]), LABELS: labels}


# ---------------------------------------------------------------------- warm-up


def sample_jpegs(image_size: Sequence[int], count: int, seed: int = 0) -> list[bytes]:
    """`count` smooth synthetic RGB images of `image_size`, JPEG-encoded (warm-up requests)."""
    rng = np.random.default_rng(seed)
    height, width = int(image_size[0]), int(image_size[1])
    images = []
    for _ in range(count):
        coarse = rng.integers(0, 256, size=(1, max(height // 16, 2), max(width // 16, 2), 3))
        image = tf.image.resize(coarse.astype(np.float32), (height, width), method="bicubic")[0]
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        images.append(tf.io.encode_jpeg(image, quality=90).numpy())
    return images


def write_warmup_requests(
    path: str | os.PathLike,
    images: Sequence[bytes],
    signature_names: Sequence[str] = (SERVING_DEFAULT,),
    model_name: str = DEFAULT_MODEL_NAME,
) -> int:
    """Writes a TF Serving warm-up file: PredictionLogs of PredictRequests of `images`.

    For each signature, one request with a single image and (if there are several)
    one with all of them, so the first real requests of both kinds are fast.
    Needs tensorflow-serving-api (`pip install tensorflow-serving-api==2.21.*`).

    Returns:
        The number of requests written.
    """
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError as error:
        raise ImportError(
            "writing TF Serving warm-up requests needs tensorflow-serving-api: "
            "pip install 'tensorflow-serving-api==2.21.*' (or export with warmup_images=0)") from error
    if not images:
        raise ValueError("write_warmup_requests needs at least one image")
    batches = [list(images[:1])] + ([list(images)] if len(images) > 1 else [])
    written = 0
    with tf.io.TFRecordWriter(os.fspath(path)) as writer:
        for signature_name in signature_names:
            for batch in batches:
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
                request.inputs[IMAGE_BYTES].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())
                written += 1
    return written


# ------------------------------------------------------------------------ export


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def export_saved_model(
    model: keras.Model | str | os.PathLike,
    output: str | os.PathLike,
    *,
    image_size: Sequence[int] | None = None,
    mixed_precision: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    warmup_images: int | Sequence[bytes] = 3,
    overwrite: bool = False,
) -> str:
    """Exports a spreid_tf model as a SavedModel for TF Serving (see the module docstring).

    Args:
        model: a Keras model, a model_dir holding model.keras, or a .keras file.
        output: the version folder to write, e.g. "exports/spreid/1" (a local path;
            TF Serving loads numeric version folders under the model's base path).
        image_size: (H, W) to decode to; default the model's input size (required
            for parsing models built with a dynamic input size).
        mixed_precision: None, "mixed_float16" or "mixed_bfloat16": compute policy
            baked into the graph (see `apply_mixed_precision`). Outputs stay float32.
        model_name: the model name in the warm-up requests (models.config's name).
        warmup_images: how many synthetic JPEGs go into the warm-up requests, or the
            encoded images to use; 0 writes no warm-up file.
        overwrite: replace an existing `output` (otherwise FileExistsError).

    Returns:
        The path of the written SavedModel.
    """
    output = os.path.abspath(os.fspath(output))
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(f"export folder {output!r} exists; TF Serving versions are immutable: "
                              "write a new version number or pass overwrite=True (--overwrite)")
    source = None
    if not isinstance(model, keras.Model):
        source = run_folder.model_file(model, flag="model_dir")
        model = run_folder.load_model(source)
    if mixed_precision:
        apply_mixed_precision(model, mixed_precision)
    module = ServingModule(model, image_size)
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    # A sibling temporary folder: same file system, so the final rename is atomic and
    # TF Serving, which polls the base path, never sees a half-written version.
    tmp = atomic.make_temporary_folder(parent, prefix=f".{os.path.basename(output)}.tmp-")
    try:
        signatures = module.signatures()
        with _quiet_signature_serialization():
            tf.saved_model.save(module, tmp, signatures=signatures)
        extra = os.path.join(tmp, ASSETS_EXTRA)
        os.makedirs(extra, exist_ok=True)
        warmup_count = 0
        if not isinstance(warmup_images, int):
            warmup_count = write_warmup_requests(os.path.join(extra, WARMUP_FILENAME), list(warmup_images),
                                                 _warmup_signatures(module.kind), model_name)
        elif warmup_images > 0:
            warmup_count = write_warmup_requests(os.path.join(extra, WARMUP_FILENAME),
                                                 sample_jpegs(module.size, warmup_images),
                                                 _warmup_signatures(module.kind), model_name)
        metadata = _metadata(module, signatures, source, mixed_precision, model_name, warmup_count)
        with open(os.path.join(extra, METADATA_FILENAME), "w") as f:
            json.dump(metadata, f, indent=2)
        if os.path.exists(output):
            trash = f"{tmp}.old-{uuid.uuid4().hex[:8]}"
            os.rename(output, trash)
            os.rename(tmp, output)
            _remove_tree(trash)
        else:
            os.rename(tmp, output)
    except BaseException:
        _remove_tree(tmp)
        raise
    return output


@contextlib.contextmanager
def _quiet_signature_serialization():
    """Hides TensorFlow's INFO lines while saving: one per signature listing every captured
    variable's input name (~8,000 characters each for SPReID), which says nothing to a user."""
    # TensorFlow's saver logs through absl (signature_serialization) and its own logger.
    loggers = [logging.getLogger(name) for name in ("absl", "tensorflow")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _warmup_signatures(kind: str) -> tuple[str, ...]:
    return (SERVING_DEFAULT, PARSE) if kind == run_folder.SPREID else (SERVING_DEFAULT,)


def _metadata(module: ServingModule, signatures, source, mixed_precision, model_name, warmup_count) -> dict:
    described = {}
    for name, function in signatures.items():
        # Positional specs (tf.function input_signature) and keyword ones, by their signature names.
        args, kwargs = function.structured_input_signature
        inputs = {spec.name or f"input_{i}": spec for i, spec in enumerate(args)}
        inputs.update(kwargs)
        described[name] = {
            "inputs": {k: {"dtype": v.dtype.name, "shape": v.shape.as_list()} for k, v in inputs.items()},
            "outputs": {k: {"dtype": v.dtype.name, "shape": v.shape.as_list()}
                        for k, v in function.structured_outputs.items()},
        }
    return {
        "model_name": model_name,
        "keras_model_name": module.model.name,
        "kind": module.kind,
        "source": source,
        "image_size": list(module.size),
        "embedding": "l2-normalised" if module.kind != run_folder.PARSING else None,
        "group_names": list(lip.GROUP_NAMES) if module.kind != run_folder.BASELINE else None,
        "mixed_precision": mixed_precision,
        "signatures": described,
        "warmup_requests": warmup_count,
        "versions": {"spreid_tf": spreid_tf.__version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
