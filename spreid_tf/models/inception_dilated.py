"""InceptionV3* : InceptionV3 at output stride 16 (or 8), for human parsing (DeepLab style).

Output stride 16 (the paper's): the last grid reduction (`mixed8`) runs at stride 1
("same" padding instead of "valid"), and the 3x3, 1x3 and 3x1 convolutions of the
last Inception blocks (`mixed9`, `mixed10`) are dilated with rate 2, so their
receptive fields match the plain network's.

Output stride 8 (DeepLab's `output_stride=8`, for small inputs): the grid
reduction before (`mixed3`) runs at stride 1 as well, the non-1x1 convolutions of
`mixed4`..`mixed7` are dilated with rate 2, and those of `mixed9`, `mixed10` with
rate 4. At the demo's 128 px people a stride-16 grid has 8 cells from head to
feet and cannot draw a shoe; stride 8 keeps the paper's cells-per-person ratio
closer (at 512 px the paper's grid has 32).

Kernel shapes do not change, so the network loads exactly the plain network's
weights: we build the plain keras.applications InceptionV3 (with whatever
`weights` asks for), clone it with the modified layer configs, and copy the
weights layer by layer in graph (block) order, asserting names and shapes.

`authors=True` gives the SPReID authors' network instead (their Chainer InceptionV3,
modelx.py of emrahbasaran/SPReID), for their released weights
(spreid_tf.models.authors_weights): the same clone of the keras.applications graph with
  - caffe preprocessing (RGB -> BGR, minus the ImageNet channel means, no scaling), as
    their data loader feeds both the parser and the re-id backbone;
  - batch norm with a learnt scale (gamma) and Chainer's epsilon 2e-5 (keras.applications:
    no scale, epsilon 1e-3);
  - the two stem max poolings in ceil mode (Chainer's default `cover_all=True`);
  - the pool branches' 3x3 average pooling dividing by 9 at the borders too (Chainer pads
    with zeros and counts them); at output stride 16 the dilated blocks `mixed9` and
    `mixed10` pool 5x5 (padding 2) instead of 3x3.
Where the dilation starts, the strides and the convolutions' paddings are ours (their
1x3 / 3x1 convolutions are dilated along their long side only, which for a one-pixel
side is the same function). Output strides 16 (their parser) and 32 (their re-id
backbone); their weights are one `.weights.h5` file of the output-stride-32 network
(`python -m spreid_tf.convert_weights --authors_dump_dir=...`), not Keras' ImageNet file.
"""

from __future__ import annotations

import os

import keras

from spreid_tf.layers import CeilModeMaxPooling2D, ImagePreprocessing, ZeroPaddedAveragePooling2D
from spreid_tf.models.applications import build_application, check_weights

# Blocks after mixed2, in graph order; every mixedN is a bottleneck (every later
# layer depends on it), so positions in `model.layers` partition the blocks.
_BLOCKS = tuple(f"mixed{i}" for i in range(3, 11))
OUTPUT_STRIDES = (8, 16, 32)
AUTHORS_OUTPUT_STRIDES = (16, 32)
# Chainer's BatchNormalization default, the authors' network's.
AUTHORS_BATCHNORM_EPSILON = 2e-5
AUTHORS_PREPROCESSING = "caffe"


def _block_of_layers(model: keras.Model) -> dict[str, str]:
    """Maps each layer name after `mixed2` to its block ("mixed3" ... "mixed10")."""
    names = [layer.name for layer in model.layers]
    blocks = {}
    start = names.index("mixed2") + 1
    for block in _BLOCKS:
        end = names.index(block) + 1
        for name in names[start:end]:
            blocks[name] = block
        start = end
    return blocks


def _block_plan(output_stride: int, rate: int) -> tuple[set[str], dict[str, int]]:
    """(grid reductions kept at stride 1, {block: dilation rate}) for an output stride."""
    if output_stride == 16:
        return {"mixed8"}, {"mixed9": rate, "mixed10": rate}
    if output_stride == 8:
        plan = {f"mixed{i}": rate for i in range(4, 8)}
        plan.update({"mixed9": 2 * rate, "mixed10": 2 * rate})
        return {"mixed3", "mixed8"}, plan
    if output_stride == 32:
        return set(), {}
    raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")


def _dilated_clone_function(blocks: dict[str, str], reductions: set[str], rates: dict[str, int]):
    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        block = blocks.get(layer.name)
        if block in reductions and tuple(config.get("strides", (1, 1))) == (2, 2):
            # Conv2D and MaxPooling2D of the grid reduction: keep the grid.
            config["strides"] = (1, 1)
            config["padding"] = "same"
        elif block in rates and isinstance(layer, keras.layers.Conv2D) \
                and tuple(config["kernel_size"]) != (1, 1):
            config["dilation_rate"] = (rates[block], rates[block])
        elif block in rates and isinstance(layer, ZeroPaddedAveragePooling2D):
            # The authors' dilated blocks widen their pool branch's window with the rate.
            config["pool_size"] = [2 * rates[block] + 1] * 2
            config["padding"] = [rates[block]] * 2
        return layer.__class__.from_config(config)

    return clone


def _authors_clone_function(model: keras.Model):
    """Clone function: keras.applications' InceptionV3 -> the authors' (see the module docstring)."""
    names = [layer.name for layer in model.layers]
    first_block = names.index("mixed0")

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if isinstance(layer, ImagePreprocessing):
            config["mode"] = AUTHORS_PREPROCESSING
        elif isinstance(layer, keras.layers.BatchNormalization):
            config.update(scale=True, epsilon=AUTHORS_BATCHNORM_EPSILON)
        elif isinstance(layer, keras.layers.MaxPooling2D) and names.index(layer.name) < first_block:
            if tuple(config["pool_size"]) != (3, 3) or tuple(config["strides"]) != (2, 2):
                raise ValueError(f"{layer.name}: expected InceptionV3's 3x3 stride-2 stem pooling, got {config}")
            return CeilModeMaxPooling2D(3, 2, name=layer.name, dtype=config["dtype"])
        elif isinstance(layer, keras.layers.AveragePooling2D):
            if tuple(config["pool_size"]) != (3, 3) or tuple(config["strides"]) != (1, 1):
                raise ValueError(f"{layer.name}: expected InceptionV3's 3x3 stride-1 branch pooling, got {config}")
            return ZeroPaddedAveragePooling2D(3, 1, name=layer.name, dtype=config["dtype"])
        return layer.__class__.from_config(config)

    return clone


def _build_authors_inception_v3(input_shape: tuple, weights: str | None) -> keras.Model:
    """The authors' InceptionV3 at output stride 32, with their converted weights or random ones."""
    if weights == "imagenet":
        raise ValueError(
            "the authors' InceptionV3 takes their ImageNet weights converted by `python -m spreid_tf.convert_weights "
            "--authors_dump_dir=data/dump --output=DIR/inception_v3_authors.weights.h5`, not weights='imagenet' "
            "(Keras' file is another network: no batch-norm scale, RGB in [-1, 1])")
    weights = check_weights(weights)
    plain = build_application("inception_v3", input_shape, None)
    model = keras.models.clone_model(plain, clone_function=_authors_clone_function(plain))
    if weights is not None:
        try:
            model.load_weights(weights)
        except Exception as error:  # Keras raises ValueError, KeyError or OSError, by the mismatch
            first_line = (str(error).splitlines() or [""])[0]
            raise ValueError(
                f"{os.fspath(weights)!r} is not a weights file of the authors' InceptionV3 (expected the "
                f".weights.h5 that `python -m spreid_tf.convert_weights --authors_dump_dir=...` writes): "
                f"{type(error).__name__}: {first_line}") from None
    return model


def transfer_weights(source: keras.Model, target: keras.Model) -> int:
    """Copies weights layer by layer in graph order; names and shapes must agree.

    Returns:
        The number of weight tensors copied.
    """
    if len(source.layers) != len(target.layers):
        raise ValueError(f"cannot transfer weights: {source.name} has {len(source.layers)} layers, "
                         f"{target.name} has {len(target.layers)}")
    copied = 0
    for src, dst in zip(source.layers, target.layers):
        if src.name != dst.name or type(src) is not type(dst):
            raise ValueError(f"layer order differs: {src.name} ({type(src).__name__}) vs "
                             f"{dst.name} ({type(dst).__name__})")
        src_weights = src.get_weights()
        for a, b in zip(src_weights, dst.get_weights()):
            if a.shape != b.shape:
                raise ValueError(f"{src.name}: weight shape {a.shape} does not match {b.shape}")
        if src_weights:
            dst.set_weights(src_weights)
            copied += len(src_weights)
    return copied


def build_dilated_inception_v3(
    input_shape: tuple = (None, None, 3),
    weights: str | None = None,
    rate: int = 2,
    model_name: str = "inception_v3_dilated",
    output_stride: int = 16,
    authors: bool = False,
) -> keras.Model:
    """Builds InceptionV3* (output stride 16) taking raw RGB in [0, 255].

    Args:
        input_shape: (H, W, 3); H, W may be None.
        weights: None, "imagenet" or a local keras.applications InceptionV3 weights file;
            loaded into the plain network and copied over unchanged. With `authors`: None
            or the authors' weights file that spreid_tf.convert_weights writes.
        rate: dilation rate of the last blocks' 3x3 / 1x3 / 3x1 convolutions
            (output stride 8: of mixed4-7; mixed9-10 get twice this rate).
        output_stride: 16 (the paper's), 8, or 32 (the plain network).
        authors: the SPReID authors' variant of the network (see the module docstring);
            output stride 16 or 32.

    Returns:
        A model mapping `(B, H, W, 3)` to `(B, ~H/s, ~W/s, 2048)` features, s = output_stride.
    """
    reductions, rates = _block_plan(output_stride, rate)
    if authors:
        if output_stride not in AUTHORS_OUTPUT_STRIDES or rate != 2:
            raise ValueError(f"the authors' InceptionV3 has output stride 16 (dilation rate 2) or 32, got "
                             f"output_stride={output_stride}, rate={rate}")
        plain = _build_authors_inception_v3(input_shape, weights)
    else:
        plain = build_application("inception_v3", input_shape, weights)
    dilated = keras.models.clone_model(
        plain, clone_function=_dilated_clone_function(_block_of_layers(plain), reductions, rates))
    transfer_weights(plain, dilated)
    # clone_model keeps the layer names; give the model its own.
    return keras.Model(dilated.input, dilated.output, name=model_name)
