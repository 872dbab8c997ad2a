"""The keras.applications networks as headless backbones on raw RGB, the backbone names,
and the argument checks every backbone builder shares.

The leaf of spreid_tf.models' backbones: the dilated builders (inception_dilated.py,
mobilenet_dilated.py) build on it, and backbones.py (`build_backbone`) dispatches to
them and to `build_application`.
"""

from __future__ import annotations

import os
from typing import Callable

import keras

from spreid_tf.layers import ImagePreprocessing

# name -> (keras.applications constructor, preprocessing mode)
APPLICATIONS: dict[str, tuple[Callable[..., keras.Model], str]] = {
    "inception_v3": (keras.applications.InceptionV3, "inception"),
    "resnet50": (keras.applications.ResNet50, "caffe"),
    "resnet152": (keras.applications.ResNet152, "caffe"),
}
# InceptionV3 with its last grid reduction at stride 1 (output stride 16; InceptionV3* of
# the parsing model, `build_dilated_inception_v3`): the re-id counterpart of fast-reid's and
# torchreid's "last stride 1" ResNets. It keeps a feature grid that part pooling can use on
# small inputs: 6x3 at 128x80 where the plain network has 2x1.
INCEPTION_V3_OS16 = "inception_v3_os16"
# The SPReID authors' InceptionV3 (their Chainer network: caffe preprocessing, batch norm with
# scale and epsilon 2e-5, Chainer's pooling; `build_dilated_inception_v3(authors=True)`), for
# their ImageNet initialisation converted by spreid_tf.convert_weights.
INCEPTION_V3_AUTHORS = "inception_v3_authors"
# MobileNetV2 (keras.applications, width 1.0), plain and at output stride 16
# (`build_dilated_mobilenet_v2`): about a tenth of InceptionV3's work, for CPU runs.
MOBILENET_V2, MOBILENET_V2_OS16 = "mobilenet_v2", "mobilenet_v2_os16"
# MobileNetV2's stride-8 features (FPN's "C3"): the network up to block 6's expansion
# (`block_6_expand_relu`, 192 channels), a receptive field of 59 pixels. Features that stay
# local: trained from random weights, the deep networks' features see the whole crop at every
# position (receptive fields of 500+ pixels) and part pooling then equals global pooling.
MOBILENET_V2_C3 = "mobilenet_v2_c3"
# keras.applications refuses smaller inputs.
MIN_SIZE = {"inception_v3": 75, INCEPTION_V3_OS16: 75, INCEPTION_V3_AUTHORS: 75, "resnet50": 32, "resnet152": 32,
            MOBILENET_V2: 32, MOBILENET_V2_OS16: 32, MOBILENET_V2_C3: 32}


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


def build_application(name: str, input_shape: tuple = (None, None, 3), weights: str | None = None,
                      model_name: str | None = None) -> keras.Model:
    """The keras.applications network `name` (a key of APPLICATIONS) without its top, on raw RGB.

    The preprocessing the network expects is its first layer; the output is the last
    feature map (no global pooling). See `backbones.build_backbone` for the arguments.
    """
    constructor, mode = APPLICATIONS[name]
    input_shape = check_input_shape(input_shape, name)
    weights = check_weights(weights)
    inputs = keras.Input(input_shape, name="image")
    x = ImagePreprocessing(mode, name="preprocessing")(inputs)
    base = constructor(include_top=False, weights=weights, input_tensor=x)
    return keras.Model(inputs, base.output, name=model_name or name)
