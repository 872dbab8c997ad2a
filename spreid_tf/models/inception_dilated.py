"""InceptionV3* : InceptionV3 at output stride 16, for human parsing (DeepLab style).

The last grid reduction (`mixed8`) runs at stride 1 ("same" padding instead of
"valid"), and the 3x3, 1x3 and 3x1 convolutions of the last Inception blocks
(`mixed9`, `mixed10`) are dilated with rate 2, so their receptive fields match
the plain network's. Kernel shapes do not change, so the network loads exactly
the plain network's weights: we build the plain keras.applications InceptionV3
(with whatever `weights` asks for), clone it with the modified layer configs, and
copy the weights layer by layer in graph (block) order, asserting names and shapes.
"""

from __future__ import annotations

import keras

from spreid_tf.models.backbones import build_backbone

# Blocks after mixed7, in graph order; mixed7/8/9 are bottlenecks (every later
# layer depends on them), so positions in `model.layers` partition the blocks.
_REDUCTION_BLOCK = "mixed8"
_DILATED_BLOCKS = ("mixed9", "mixed10")


def _block_of_layers(model: keras.Model) -> dict[str, str]:
    """Maps each layer name after `mixed7` to its block ("mixed8", "mixed9", "mixed10")."""
    names = [layer.name for layer in model.layers]
    blocks = {}
    start = names.index("mixed7") + 1
    for block in (_REDUCTION_BLOCK,) + _DILATED_BLOCKS:
        end = names.index(block) + 1
        for name in names[start:end]:
            blocks[name] = block
        start = end
    return blocks


def _dilated_clone_function(blocks: dict[str, str], rate: int):
    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        block = blocks.get(layer.name)
        if block == _REDUCTION_BLOCK and tuple(config.get("strides", (1, 1))) == (2, 2):
            # Conv2D and MaxPooling2D of the grid reduction: keep the grid.
            config["strides"] = (1, 1)
            config["padding"] = "same"
        elif block in _DILATED_BLOCKS and isinstance(layer, keras.layers.Conv2D) \
                and tuple(config["kernel_size"]) != (1, 1):
            config["dilation_rate"] = (rate, rate)
        return layer.__class__.from_config(config)

    return clone


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
) -> keras.Model:
    """Builds InceptionV3* (output stride 16) taking raw RGB in [0, 255].

    Args:
        input_shape: (H, W, 3); H, W may be None.
        weights: None, "imagenet" or a local keras.applications InceptionV3 weights file;
            loaded into the plain network and copied over unchanged.
        rate: dilation rate of the last blocks' 3x3 / 1x3 / 3x1 convolutions.

    Returns:
        A model mapping `(B, H, W, 3)` to `(B, ~H/16, ~W/16, 2048)` features.
    """
    plain = build_backbone("inception_v3", input_shape, weights)
    dilated = keras.models.clone_model(plain, clone_function=_dilated_clone_function(_block_of_layers(plain), rate))
    transfer_weights(plain, dilated)
    # clone_model keeps the layer names; give the model its own.
    return keras.Model(dilated.input, dilated.output, name=model_name)
