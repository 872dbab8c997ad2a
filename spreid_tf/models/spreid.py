"""SPReID and baseline re-id models, and the combination of embeddings."""

from __future__ import annotations

import os

import keras
from keras import ops

from spreid_tf import lip, run_folder
from spreid_tf.layers import GroupLIPProbabilities, PartMaxPooling, ResizeTo, SemanticPooling, StopGradient
from spreid_tf.models.backbones import build_backbone, check_backbone, feature_channels, input_shape_from_size
from spreid_tf.models.parsing import build_parsing_model

VARIANTS = ("w_fg", "wo_fg")
# Pooled vectors concatenated in the embedding: global (+ foreground) + parts.
_EMBEDDING_PIECES = {"baseline": 1, "wo_fg": 2, "w_fg": 3}


def embedding_dim(kind: str, backbone: str = "inception_v3") -> int:
    """Embedding width of "baseline", "wo_fg" or "w_fg" on `backbone` (InceptionV3: 2048, 4096, 6144)."""
    if kind not in _EMBEDDING_PIECES:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {tuple(_EMBEDDING_PIECES)}")
    return _EMBEDDING_PIECES[kind] * feature_channels(backbone)


def _check_num_identities(num_identities: int) -> int:
    if int(num_identities) < 2:
        raise ValueError(f"num_identities must be at least 2, got {num_identities}")
    return int(num_identities)


def _classifier_and_outputs(embedding, num_identities: int):
    embedding = keras.layers.Activation("linear", dtype="float32", name=run_folder.EMBEDDING)(embedding)
    logits = keras.layers.Dense(num_identities, name=run_folder.CLASSIFIER)(embedding)
    logits = keras.layers.Activation("linear", dtype="float32", name=run_folder.LOGITS)(logits)
    return {run_folder.EMBEDDING: embedding, run_folder.LOGITS: logits}


def build_baseline_model(
    num_identities: int,
    backbone: str = "inception_v3",
    input_size: tuple[int, int] = (492, 164),
    weights: str | None = None,
    name: str | None = None,
) -> keras.Model:
    """The paper's baseline: backbone, global average pooling (2048-D), classifier.

    Args:
        num_identities: classifier width (from the data's label map).
        backbone: one of BACKBONES ("inception_v3", "resnet50", ...).
        input_size: (height, width) of the raw RGB input in [0, 255].
        weights: backbone weights: None, "imagenet" or a local file.

    Returns:
        A model with outputs {"embedding": (B, embedding_dim("baseline", backbone)) float32
        (2048 for InceptionV3), "logits": (B, num_identities)}.
    """
    num_identities = _check_num_identities(num_identities)
    input_shape = input_shape_from_size(input_size, check_backbone(backbone))
    inputs = keras.Input(input_shape, name="image")
    features = build_backbone(backbone, input_shape, weights, model_name="backbone")(inputs)
    embedding = keras.layers.GlobalAveragePooling2D(name="global_pool")(features)
    return keras.Model(inputs, _classifier_and_outputs(embedding, num_identities),
                       name=name or f"baseline_{backbone}")


def _resolve_parsing_model(parsing_model, input_shape) -> keras.Model:
    if parsing_model is None:
        return build_parsing_model(input_shape=(None, None, 3))
    if isinstance(parsing_model, (str, os.PathLike)):
        path = os.fspath(parsing_model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"parsing model file {path!r} does not exist (expected a .keras file "
                                    "saved from build_parsing_model)")
        parsing_model = keras.saving.load_model(path, compile=False)
    if not isinstance(parsing_model, keras.Model):
        raise TypeError(f"parsing_model must be None, a keras.Model or a .keras path, got {parsing_model!r}")
    expected = parsing_model.input_shape[1:3]
    for got, want in zip(input_shape[:2], expected):
        if want is not None and got != want:
            raise ValueError(f"parsing model takes inputs of size {expected}, the SPReID input is "
                             f"{input_shape[:2]}; build the parsing model with input_shape=(None, None, 3)")
    return parsing_model


def build_spreid_model(
    num_identities: int,
    variant: str = "w_fg",
    weight_sharing: bool = True,
    backbone: str = "inception_v3",
    input_size: tuple[int, int] = (512, 170),
    reid_input_size: tuple[int, int] | None = None,
    parsing_model: keras.Model | str | None = None,
    weights: str | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds SPReID (Kalayeh et al., CVPR 2018).

    The raw image (RGB 0-255 at the parsing resolution `input_size`) goes to the
    frozen parsing model (inference-mode batch norm, no gradient), whose softmax
    at output stride 16 is grouped into five maps (foreground, head, upper body,
    lower body, shoes). The re-id backbone sees the image bilinearly resized to
    `reid_input_size`; its activations are bilinearly upsampled to the parsing
    grid and pooled once with each l1-normalised map. The four part vectors are
    max-ed element-wise; the embedding concatenates the global-average-pooled
    backbone vector, the foreground vector (w_fg only) and the part vector.

    Args:
        num_identities: classifier width (from the data's label map).
        variant: "w_fg" (6144-D embedding) or "wo_fg" (4096-D).
        weight_sharing: True: the global-pooling branch and the semantic-pooling
            branch share one backbone; False: each has its own (Table 5).
        backbone: re-id backbone name.
        input_size: (H, W) of the raw input = the parsing resolution.
        reid_input_size: (h, w) the re-id branch sees; default `input_size`.
        parsing_model: a model from `build_parsing_model` (trained on LIP), the
            path of its .keras file, or None for a fresh one (tests, smoke runs).
        weights: re-id backbone weights: None, "imagenet" or a local file.

    Returns:
        A model with outputs {"embedding": (B, D) float32, "logits": (B, num_identities)},
        D = embedding_dim(variant, backbone) (InceptionV3: 6144 w_fg, 4096 wo_fg).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown SPReID variant {variant!r}; expected one of {VARIANTS}")
    num_identities = _check_num_identities(num_identities)
    input_shape = input_shape_from_size(input_size, "inception_v3")
    reid_shape = input_shape_from_size(reid_input_size or input_size, check_backbone(backbone))
    reid_size = reid_shape[:2]

    parsing = _resolve_parsing_model(parsing_model, input_shape)
    # Only the stride-16 logits are needed: skip the full-resolution upsampling.
    parsing_branch = keras.Model(parsing.input, parsing.get_layer(run_folder.LOGITS).output, name="parsing_branch")
    parsing_branch.trainable = False

    inputs = keras.Input(input_shape, name="image")
    parsing_logits = StopGradient(name=run_folder.PARSING_STOP_GRADIENT)(parsing_branch(inputs, training=False))
    probabilities = keras.layers.Softmax(dtype="float32", name=run_folder.PARSING_SOFTMAX)(parsing_logits)
    maps = GroupLIPProbabilities(name=run_folder.SEMANTIC_MAPS)(probabilities)

    reid_image = inputs
    if reid_size != input_shape[:2]:
        reid_image = ResizeTo(*reid_size, name="reid_resize")(inputs)
    reid_backbone = build_backbone(backbone, reid_shape, weights, model_name="reid_backbone")
    features = reid_backbone(reid_image)
    if weight_sharing:
        global_features = features
    else:
        global_backbone = build_backbone(backbone, reid_shape, weights, model_name="global_backbone")
        global_features = global_backbone(reid_image)

    pooled = SemanticPooling(resize="features", name="semantic_pooling")([features, maps])
    foreground, parts = PartMaxPooling(name="part_max")(pooled)
    global_vector = keras.layers.GlobalAveragePooling2D(name="global_pool")(global_features)
    pieces = [global_vector, foreground, parts] if variant == "w_fg" else [global_vector, parts]
    embedding = keras.layers.Concatenate(dtype="float32", name="concat")(pieces)
    model_name = name or f"spreid_{variant}_{'shared' if weight_sharing else 'exclusive'}"
    return keras.Model(inputs, _classifier_and_outputs(embedding, num_identities), name=model_name)


def build_pooling_probe(model: keras.Model, name: str = "spreid_pooling_probe") -> keras.Model:
    """SPReID's embedding with the five pooling maps as an input instead of the parser's.

    Shares every layer (and so every weight) of a model from `build_spreid_model`;
    only the maps change. It measures what the part pooling itself is worth: with
    ground-truth part masks (an upper bound of the parser), or with uniform maps (all
    five pooled vectors then equal the global average of the upsampled features,
    i.e. global average pooling).

    Args:
        model: a SPReID model (built or loaded from a .keras file).

    Returns:
        A model taking {"image": (B, H, W, 3) raw RGB at the model's input size,
        "maps": (B, h, w, 5) non-negative maps in lip.GROUP_NAMES order, any grid}
        and returning the (B, D) embedding, float32.
    """
    names = {layer.name for layer in model.layers}
    missing = {"reid_backbone", "semantic_pooling", "part_max", "global_pool", "concat"} - names
    if missing:
        raise ValueError(f"build_pooling_probe needs a SPReID model; {model.name!r} has no layers {sorted(missing)}")
    image = keras.Input(model.input_shape[1:], name="image")
    maps = keras.Input((None, None, lip.NUM_GROUPS), name="maps")
    reid_image = model.get_layer("reid_resize")(image) if "reid_resize" in names else image
    features = model.get_layer("reid_backbone")(reid_image)
    global_features = model.get_layer("global_backbone")(reid_image) if "global_backbone" in names else features
    foreground, parts = model.get_layer("part_max")(model.get_layer("semantic_pooling")([features, maps]))
    global_vector = model.get_layer("global_pool")(global_features)
    with_foreground = len(model.get_layer("concat").input) == 3
    pieces = [global_vector, foreground, parts] if with_foreground else [global_vector, parts]
    embedding = model.get_layer("concat")(pieces)
    return keras.Model({"image": image, "maps": maps}, embedding, name=name)


def combine_embeddings(*embeddings):
    """l2-normalises each `(N, D_i)` embedding and concatenates them (the paper's "combined" rows).

    Works on numpy arrays and tensors; returns a float32 tensor of width sum(D_i).
    """
    if len(embeddings) < 1:
        raise ValueError("combine_embeddings needs at least one embedding")
    rows = {int(e.shape[0]) for e in embeddings if e.shape[0] is not None}
    if len(rows) > 1:
        raise ValueError(f"combine_embeddings: embeddings have different numbers of rows {sorted(rows)}")
    normalised = [ops.normalize(ops.cast(e, "float32"), axis=-1, order=2, epsilon=1e-12) for e in embeddings]
    return ops.concatenate(normalised, axis=-1)

