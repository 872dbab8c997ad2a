"""The human-parsing model: InceptionV3* + ASPP + a 1x1 classifier over the LIP labels."""

from __future__ import annotations

import keras

from spreid_tf import lip
from spreid_tf.layers import ASPP, ResizeLike
from spreid_tf.models.backbones import check_input_shape
from spreid_tf.models.inception_dilated import build_dilated_inception_v3

# Layer names used to split variables into learning-rate groups when training.
ASPP_NAME = "aspp"
CLASSIFIER_NAME = "classifier"
BACKBONE_NAME = "inception_v3_dilated"


def build_parsing_model(
    num_classes: int = lip.NUM_CLASSES,
    input_shape: tuple = (None, None, 3),
    weights: str | None = None,
    aspp_rates: tuple[int, ...] = (3, 6, 9, 12),
    name: str = "parsing_model",
) -> keras.Model:
    """Builds the SPReID human-parsing network.

    Args:
        num_classes: number of parsing labels (LIP: 20).
        input_shape: (H, W, 3) raw RGB in [0, 255]; H, W may be None (any size).
        weights: ImageNet weights for the backbone: None, "imagenet" or a local file.
        aspp_rates: dilation rates of the ASPP 3x3 branches.

    Returns:
        A model with outputs {"logits": (B, ~H/16, ~W/16, num_classes) at output
        stride 16, "probabilities": softmax of the logits upsampled bilinearly to
        (B, H, W, num_classes), float32}.
    """
    input_shape = check_input_shape(input_shape, "inception_v3")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    inputs = keras.Input(input_shape, name="image")
    backbone = build_dilated_inception_v3(input_shape, weights, model_name=BACKBONE_NAME)
    features = backbone(inputs)
    x = ASPP(rates=aspp_rates, name=ASPP_NAME)(features)
    logits = keras.layers.Conv2D(num_classes, 1, name=CLASSIFIER_NAME)(x)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    upsampled = ResizeLike(dtype="float32", name="upsample")([logits, inputs])
    probabilities = keras.layers.Softmax(dtype="float32", name="probabilities")(upsampled)
    return keras.Model(inputs, {"logits": logits, "probabilities": probabilities}, name=name)
