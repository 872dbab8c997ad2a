"""The human-parsing model: InceptionV3* (or MobileNetV2) + ASPP + a 1x1 classifier over the LIP labels."""

from __future__ import annotations

import keras

from spreid_tf import lip, run_folder
from spreid_tf.layers import ASPP, CeilModeMaxPooling2D, DeepLabDecoder, ResizeLike
from spreid_tf.models.applications import INCEPTION_V3_AUTHORS, check_input_shape
from spreid_tf.models.inception_dilated import AUTHORS_BATCHNORM_EPSILON, build_dilated_inception_v3
from spreid_tf.models.mobilenet_dilated import build_dilated_mobilenet_v2

# Layer names used to split variables into learning-rate groups when training.
ASPP_NAME = "aspp"
CLASSIFIER_NAME = "classifier"  # the parsing classifier (1x1 to the 20 LIP labels)
DECODER_NAME = "decoder"
# backbone name -> the name of its sub-model in the parsing model.
BACKBONE_NAMES = {"inception_v3": "inception_v3_dilated", "mobilenet_v2": "mobilenet_v2_dilated",
                  INCEPTION_V3_AUTHORS: "inception_v3_authors_dilated"}
PARSING_BACKBONES = tuple(BACKBONE_NAMES)


def _low_level_features(backbone: str, model: keras.Model):
    """The backbone's output at stride 4, for the decoder."""
    if backbone == "mobilenet_v2":
        return model.get_layer("block_2_add").output  # after the second inverted residual at stride 4
    # InceptionV3: its first max pooling (stride 4, 64 channels); keras.applications numbers
    # the layer names per session, so find it by type (the authors' network pools in ceil mode).
    first_pool = next(layer for layer in model.layers
                      if isinstance(layer, (keras.layers.MaxPooling2D, CeilModeMaxPooling2D)))
    return first_pool.output


def build_parsing_model(
    num_classes: int = lip.NUM_CLASSES,
    input_shape: tuple = (None, None, 3),
    weights: str | None = None,
    aspp_rates: tuple[int, ...] = (3, 6, 9, 12),
    name: str = "parsing_model",
    output_stride: int = 16,
    aspp_filters: int = 256,
    backbone: str = "inception_v3",
    decoder: bool = False,
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
        backbone: "inception_v3" (the paper's InceptionV3*), "mobilenet_v2" (DeepLab's
            atrous MobileNetV2, `build_dilated_mobilenet_v2`: a tenth of the work, for CPU
            runs from random weights) or "inception_v3_authors" (the SPReID authors' network:
            their InceptionV3* (`build_dilated_inception_v3(authors=True)`, output stride 16)
            and ASPP batch norms with Chainer's epsilon 2e-5; `weights`: None or the file
            spreid_tf.convert_weights writes; their trained parser: spreid_tf.convert_weights
            --chainer_parsing_model).
        decoder: add DeepLabv3+'s decoder (`DeepLabDecoder`, 48 low-level channels,
            `aspp_filters` wide: DeepLab's 256 at the default width): the logits come at
            output stride 4, refined with the backbone's stride-4 features (small parts such
            as shoes on small images).

    Returns:
        A model with outputs {"logits": (B, ~H/s, ~W/s, num_classes) at output
        stride s (4 with the decoder), "probabilities": softmax of the logits upsampled bilinearly to
        (B, H, W, num_classes), float32}.
    """
    if backbone not in BACKBONE_NAMES:
        raise ValueError(f"unknown parsing backbone {backbone!r}; expected one of {PARSING_BACKBONES}")
    input_shape = check_input_shape(input_shape, backbone)
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    inputs = keras.Input(input_shape, name="image")
    if backbone == INCEPTION_V3_AUTHORS:
        backbone_model = build_dilated_inception_v3(input_shape, weights, model_name=BACKBONE_NAMES[backbone],
                                                    output_stride=output_stride, authors=True)
    else:
        build = build_dilated_inception_v3 if backbone == "inception_v3" else build_dilated_mobilenet_v2
        backbone_model = build(input_shape, weights, model_name=BACKBONE_NAMES[backbone],
                               output_stride=output_stride)
    # The authors' Chainer batch norms use epsilon 2e-5; ours Keras' default.
    epsilon = {"epsilon": AUTHORS_BATCHNORM_EPSILON} if backbone == INCEPTION_V3_AUTHORS else {}
    if decoder:
        backbone_model = keras.Model(backbone_model.input,
                                     [backbone_model.output, _low_level_features(backbone, backbone_model)],
                                     name=backbone_model.name)
        features, low_level = backbone_model(inputs)
    else:
        features = backbone_model(inputs)
    x = ASPP(rates=aspp_rates, pooling_filters=2 * aspp_filters, pointwise_filters=2 * aspp_filters,
             atrous_filters=aspp_filters, output_filters=4 * aspp_filters, name=ASPP_NAME, **epsilon)(features)
    if decoder:
        x = DeepLabDecoder(filters=aspp_filters, name=DECODER_NAME)([x, low_level])
    logits = keras.layers.Conv2D(num_classes, 1, name=CLASSIFIER_NAME)(x)
    logits = keras.layers.Activation("linear", dtype="float32", name=run_folder.LOGITS)(logits)
    upsampled = ResizeLike(dtype="float32", name="upsample")([logits, inputs])
    probabilities = keras.layers.Softmax(dtype="float32", name=run_folder.PROBABILITIES)(upsampled)
    return keras.Model(inputs, {run_folder.LOGITS: logits, run_folder.PROBABILITIES: probabilities}, name=name)
