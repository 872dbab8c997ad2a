"""MobileNetV2 at output stride 16 or 8 (DeepLab's atrous MobileNetV2), from keras.applications.

The small backbone of the CPU demo: about a tenth of InceptionV3's work per image, so
that the parser and the re-id models can be trained from random weights in minutes.
DeepLab (Chen et al. 2018) and its TensorFlow models use MobileNetV2 the same way.

Output stride s < 32 keeps the grid at the reductions past stride s: the strided
depthwise convolution of that block runs at stride 1 with the dilation reached so
far, and every later depthwise convolution is dilated by the product of the strides
skipped (TF DeepLab's `current_stride`/`rate` rule):

- s = 16: block_13 at stride 1 (rate 1); blocks 14-16 at rate 2.
- s = 8: block_6 at stride 1 (rate 1); blocks 7-12 at rate 2; block_13 at stride 1
  (rate 2); blocks 14-16 at rate 4.

keras.applications pads a strided depthwise convolution with a ZeroPadding2D and runs
it "valid"; at stride 1 and rate r that padding becomes r pixels a side, so the grid
keeps its size. Kernel shapes do not change: the network loads the plain network's
weights (built with `weights`, then copied layer by layer).
"""

from __future__ import annotations

import keras

from spreid_tf.layers import ImagePreprocessing
from spreid_tf.models.applications import MOBILENET_V2, check_input_shape, check_weights

OUTPUT_STRIDES = (8, 16, 32)
# The blocks whose depthwise convolution has stride 2 (Conv1 before them has stride 2 too).
_REDUCTIONS = ("block_1", "block_3", "block_6", "block_13")


def _block(layer_name: str) -> str | None:
    parts = layer_name.split("_")
    return f"block_{parts[1]}" if layer_name.startswith("block_") and len(parts) > 2 else None


def _plan(output_stride: int) -> tuple[dict[str, int], dict[str, int]]:
    """({reduction block kept at stride 1: its rate}, {block: dilation rate of its depthwise conv})."""
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
    kept, rates = {}, {}
    stride, rate = 2, 1  # Conv1 has stride 2
    for i in range(17):
        block = f"block_{i}"
        if block in _REDUCTIONS:
            if stride * 2 > output_stride:
                kept[block] = rate
                rates[block] = rate
                rate *= 2
                continue
            stride *= 2
        if rate > 1:
            rates[block] = rate
    return kept, rates


def _clone_function(kept: dict[str, int], rates: dict[str, int]):
    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        block = _block(layer.name)
        if block in kept and isinstance(layer, keras.layers.ZeroPadding2D):
            r = kept[block]
            config["padding"] = ((r, r), (r, r))
        elif block in rates and isinstance(layer, keras.layers.DepthwiseConv2D):
            config["strides"] = (1, 1)
            config["dilation_rate"] = (rates[block], rates[block])
            if block not in kept:
                config["padding"] = "same"
        return layer.__class__.from_config(config)

    return clone


def build_dilated_mobilenet_v2(
    input_shape: tuple = (None, None, 3),
    weights: str | None = None,
    output_stride: int = 16,
    alpha: float = 1.0,
    model_name: str = "mobilenet_v2_dilated",
) -> keras.Model:
    """Builds MobileNetV2 (headless) at `output_stride`, taking raw RGB in [0, 255].

    Args:
        input_shape: (H, W, 3); H, W may be None.
        weights: None, "imagenet" or a local keras.applications MobileNetV2 weights file
            (for `alpha`); loaded into the plain network and copied over unchanged.
        output_stride: 32 (the plain network), 16 or 8.
        alpha: width multiplier of keras.applications.MobileNetV2.

    Returns:
        A model mapping `(B, H, W, 3)` to `(B, ~H/s, ~W/s, 1280)` features
        (the final 1x1 convolution, after its ReLU6).
    """
    from spreid_tf.models.inception_dilated import transfer_weights  # imports backbones

    input_shape = check_input_shape(input_shape, MOBILENET_V2)
    weights = check_weights(weights)
    inputs = keras.Input(input_shape, name="image")
    x = ImagePreprocessing("inception", name="preprocessing")(inputs)  # keras' "tf" mode: x / 127.5 - 1
    plain = keras.applications.MobileNetV2(include_top=False, weights=weights, input_tensor=x, alpha=alpha)
    plain = keras.Model(inputs, plain.output, name=model_name)
    kept, rates = _plan(output_stride)
    if not rates:
        return plain
    dilated = keras.models.clone_model(plain, clone_function=_clone_function(kept, rates))
    transfer_weights(plain, dilated)
    return keras.Model(dilated.input, dilated.output, name=model_name)
