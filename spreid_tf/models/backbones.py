"""Re-id backbones from keras.applications, taking raw RGB images in [0, 255].

Each backbone is the ImageNet classification network with its top (global
pooling and classifier) removed: a `(B, H/32, W/32, C)` feature map (C = 2048 for
InceptionV3 and the ResNets, 1280 for MobileNetV2; `feature_channels`). The
"_os16" variants keep their last reduction at stride 1: `(B, H/16, W/16, C)`. The
preprocessing each network expects is the first layer of the returned model.
"""

from __future__ import annotations

import keras

from spreid_tf.models.applications import (APPLICATIONS, INCEPTION_V3_AUTHORS, INCEPTION_V3_OS16, MOBILENET_V2,
                                          MOBILENET_V2_C3, MOBILENET_V2_OS16, build_application, check_input_shape)
from spreid_tf.models.inception_dilated import build_dilated_inception_v3
from spreid_tf.models.mobilenet_dilated import build_dilated_mobilenet_v2

_MOBILENET_C3_LAYER = "block_6_expand_relu"
BACKBONES: tuple[str, ...] = tuple(APPLICATIONS) + (INCEPTION_V3_OS16, MOBILENET_V2, MOBILENET_V2_OS16,
                                                     MOBILENET_V2_C3, INCEPTION_V3_AUTHORS)
FEATURE_CHANNELS = 2048
_CHANNELS = {MOBILENET_V2: 1280, MOBILENET_V2_OS16: 1280, MOBILENET_V2_C3: 192}


def feature_channels(name: str) -> int:
    """Channels of the feature map of backbone `name` (the baseline's embedding width)."""
    return _CHANNELS.get(check_backbone(name), FEATURE_CHANNELS)


def input_shape_from_size(size, backbone: str = "inception_v3") -> tuple:
    """`(H, W)` -> `(H, W, 3)`; an `(H, W, C)` is accepted and checked (C must be 3)."""
    size = tuple(size)
    if len(size) not in (2, 3):
        raise ValueError(f"input size must be (height, width), got {size}")
    return check_input_shape(size if len(size) == 3 else size + (3,), backbone)


def check_backbone(name: str) -> str:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
    return name


def build_backbone(
    name: str = "inception_v3",
    input_shape: tuple = (None, None, 3),
    weights: str | None = None,
    model_name: str | None = None,
) -> keras.Model:
    """Builds a headless keras.applications backbone that takes raw RGB in [0, 255].

    Args:
        name: one of BACKBONES: "inception_v3", "inception_v3_os16" (last reduction at
            stride 1), "resnet50", "resnet152", "mobilenet_v2", "mobilenet_v2_os16",
            "mobilenet_v2_c3" (stride-8 features, 59 px receptive field), "inception_v3_authors"
            (the SPReID authors' InceptionV3, `build_dilated_inception_v3(authors=True)`).
        input_shape: (H, W, 3); H, W may be None.
        weights: None (random), "imagenet" (downloaded and cached by Keras when
            online) or the path of a local weights file for that application
            ("inception_v3_authors": the file spreid_tf.convert_weights writes from the
            authors' ImageNet dump; no "imagenet").
        model_name: name of the returned model (default: `name`).

    Returns:
        A model mapping `(B, H, W, 3)` images to `(B, h, w, feature_channels(name))`
        features at output stride 32 (16 for the "_os16" ones, 8 for "mobilenet_v2_c3"; no
        global pooling).
    """
    if check_backbone(name) == INCEPTION_V3_OS16:
        return build_dilated_inception_v3(input_shape, weights, model_name=model_name or name)
    if name == INCEPTION_V3_AUTHORS:
        return build_dilated_inception_v3(check_input_shape(input_shape, name), weights, output_stride=32,
                                          authors=True, model_name=model_name or name)
    if name in (MOBILENET_V2, MOBILENET_V2_OS16, MOBILENET_V2_C3):
        output_stride = 16 if name == MOBILENET_V2_OS16 else 32
        network = build_dilated_mobilenet_v2(input_shape, weights, output_stride=output_stride,
                                             model_name=model_name or name)
        if name == MOBILENET_V2_C3:
            network = keras.Model(network.input, network.get_layer(_MOBILENET_C3_LAYER).output, name=network.name)
        return network
    return build_application(name, input_shape, weights, model_name)
