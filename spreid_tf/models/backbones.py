"""Re-id backbones from keras.applications, taking raw RGB images in [0, 255].

Each backbone is the ImageNet classification network with its top (global
pooling and classifier) removed: a `(B, H/32, W/32, C)` feature map (C = 2048 for
InceptionV3 and the ResNets, 1280 for MobileNetV2; `feature_channels`). The
"_os16" variants keep their last reduction at stride 1: `(B, H/16, W/16, C)`. The
preprocessing each network expects is the first layer of the returned model.
"""

from __future__ import annotations

import os
from typing import Callable

import keras

from spreid_tf.layers import ImagePreprocessing

# name -> (keras.applications constructor, preprocessing mode)
_APPLICATIONS: dict[str, tuple[Callable[..., keras.Model], str]] = {
    "inception_v3": (keras.applications.InceptionV3, "inception"),
    "resnet50": (keras.applications.ResNet50, "caffe"),
    "resnet152": (keras.applications.ResNet152, "caffe"),
}
# InceptionV3 with its last grid reduction at stride 1 (output stride 16; InceptionV3* of
# the parsing model, `build_dilated_inception_v3`): the re-id counterpart of fast-reid's and
# torchreid's "last stride 1" ResNets. It keeps a feature grid that part pooling can use on
# small inputs: 6x3 at 128x80 where the plain network has 2x1.
INCEPTION_V3_OS16 = "inception_v3_os16"
# MobileNetV2 (keras.applications, width 1.0), plain and at output stride 16
# (`build_dilated_mobilenet_v2`): about a tenth of InceptionV3's work, for CPU runs.
MOBILENET_V2, MOBILENET_V2_OS16 = "mobilenet_v2", "mobilenet_v2_os16"
# MobileNetV2's stride-8 features (FPN's "C3"): the network up to block 6's expansion
# (`block_6_expand_relu`, 192 channels), a receptive field of 59 pixels. Features that stay
# local: trained from random weights, the deep networks' features see the whole crop at every
# position (receptive fields of 500+ pixels) and part pooling then equals global pooling.
MOBILENET_V2_C3 = "mobilenet_v2_c3"
_MOBILENET_C3_LAYER = "block_6_expand_relu"
BACKBONES: tuple[str, ...] = tuple(_APPLICATIONS) + (INCEPTION_V3_OS16, MOBILENET_V2, MOBILENET_V2_OS16,
                                                     MOBILENET_V2_C3)
FEATURE_CHANNELS = 2048
_CHANNELS = {MOBILENET_V2: 1280, MOBILENET_V2_OS16: 1280, MOBILENET_V2_C3: 192}
# keras.applications refuses smaller inputs.
MIN_SIZE = {"inception_v3": 75, INCEPTION_V3_OS16: 75, "resnet50": 32, "resnet152": 32,
            MOBILENET_V2: 32, MOBILENET_V2_OS16: 32, MOBILENET_V2_C3: 32}


def feature_channels(name: str) -> int:
    """Channels of the feature map of backbone `name` (the baseline's embedding width)."""
    return _CHANNELS.get(check_backbone(name), FEATURE_CHANNELS)


def check_weights(weights: str | None) -> str | None:
    """Validates a `weights` argument: None, "imagenet", or an existing local file."""
    if weights is None or weights == "imagenet":
        return weights
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be None, 'imagenet' or a file path, got {weights!r}")
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights file {path!r} does not exist; pass None, 'imagenet' (downloaded when online) "
            "or the path of a keras.applications weights file (e.g. "
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5)")
    return path


def check_input_shape(input_shape, backbone: str = "inception_v3") -> tuple:
    """Validates `(H, W, 3)`; H and W may be None (any size at run time)."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape}")
    if input_shape[-1] != 3:
        raise ValueError(f"input_shape must have 3 (RGB) channels, got {input_shape[-1]} in {input_shape}")
    minimum = MIN_SIZE.get(backbone, 1)
    for side in input_shape[:2]:
        if side is not None and side < minimum:
            raise ValueError(f"{backbone} needs inputs of at least {minimum} pixels a side, got {input_shape}")
    return input_shape


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
            "mobilenet_v2_c3" (stride-8 features, 59 px receptive field).
        input_shape: (H, W, 3); H, W may be None.
        weights: None (random), "imagenet" (downloaded and cached by Keras when
            online) or the path of a local weights file for that application.
        model_name: name of the returned model (default: `name`).

    Returns:
        A model mapping `(B, H, W, 3)` images to `(B, h, w, feature_channels(name))`
        features at output stride 32 (16 for the "_os16" ones, 8 for "mobilenet_v2_c3"; no
        global pooling).
    """
    if check_backbone(name) == INCEPTION_V3_OS16:
        from spreid_tf.models.inception_dilated import build_dilated_inception_v3  # imports this module

        return build_dilated_inception_v3(input_shape, weights, model_name=model_name or name)
    if name in (MOBILENET_V2, MOBILENET_V2_OS16, MOBILENET_V2_C3):
        from spreid_tf.models.mobilenet_dilated import build_dilated_mobilenet_v2  # imports this module

        output_stride = 16 if name == MOBILENET_V2_OS16 else 32
        network = build_dilated_mobilenet_v2(input_shape, weights, output_stride=output_stride,
                                             model_name=model_name or name)
        if name == MOBILENET_V2_C3:
            network = keras.Model(network.input, network.get_layer(_MOBILENET_C3_LAYER).output, name=network.name)
        return network
    constructor, mode = _APPLICATIONS[name]
    input_shape = check_input_shape(input_shape, name)
    weights = check_weights(weights)
    inputs = keras.Input(input_shape, name="image")
    x = ImagePreprocessing(mode, name="preprocessing")(inputs)
    base = constructor(include_top=False, weights=weights, input_tensor=x)
    return keras.Model(inputs, base.output, name=model_name or name)
