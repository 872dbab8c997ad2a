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
    output_stride: int = 16,
    aspp_filters: int = 256,
) -> keras.Model:
    """Builds the SPReID human-parsing network.

    Args:
        num_classes: number of parsing labels (LIP: 20).
        input_shape: (H, W, 3) raw RGB in [0, 255]; H, W may be None (any size).
        weights: ImageNet weights for the backbone: None, "imagenet" or a local file.
        aspp_rates: dilation rates of the ASPP 3x3 branches.
        output_stride: 16 (the paper's InceptionV3*) or 8 (finer logits for small inputs;
            see `build_dilated_inception_v3`).
        aspp_filters: width of each ASPP atrous branch (the authors': 256); the
            image-pooling and 1x1 branches are twice as wide and the projection four
            times, as in the authors' 256/512/512/1024. Narrower heads train faster on a CPU.

    Returns:
        A model with outputs {"logits": (B, ~H/s, ~W/s, num_classes) at output
        stride s, "probabilities": softmax of the logits upsampled bilinearly to
        (B, H, W, num_classes), float32}.
    """
    input_shape = check_input_shape(input_shape, "inception_v3")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    inputs = keras.Input(input_shape, name="image")
    backbone = build_dilated_inception_v3(input_shape, weights, model_name=BACKBONE_NAME,
                                          output_stride=output_stride)
    features = backbone(inputs)
    x = ASPP(rates=aspp_rates, pooling_filters=2 * aspp_filters, pointwise_filters=2 * aspp_filters,
             atrous_filters=aspp_filters, output_filters=4 * aspp_filters, name=ASPP_NAME)(features)
    logits = keras.layers.Conv2D(num_classes, 1, name=CLASSIFIER_NAME)(x)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    upsampled = ResizeLike(dtype="float32", name="upsample")([logits, inputs])
    probabilities = keras.layers.Softmax(dtype="float32", name="probabilities")(upsampled)
    return keras.Model(inputs, {"logits": logits, "probabilities": probabilities}, name=name)
