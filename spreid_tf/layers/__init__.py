"""Custom Keras layers of spreid_tf, all registered serializable under package "spreid_tf"."""

from spreid_tf.layers.aspp import ASPP
from spreid_tf.layers.decoder import DeepLabDecoder
from spreid_tf.layers.lip_grouping import GroupLIPProbabilities, group_lip_probabilities
from spreid_tf.layers.part_max import PartMaxPooling
from spreid_tf.layers.pooling import CeilModeMaxPooling2D, ZeroPaddedAveragePooling2D
from spreid_tf.layers.preprocessing import ImagePreprocessing
from spreid_tf.layers.resize import ResizeLike, ResizeTo
from spreid_tf.layers.semantic_pooling import SemanticPooling
from spreid_tf.layers.stop_gradient import StopGradient

__all__ = [
    "ASPP",
    "CeilModeMaxPooling2D",
    "DeepLabDecoder",
    "GroupLIPProbabilities",
    "ImagePreprocessing",
    "PartMaxPooling",
    "ResizeLike",
    "ResizeTo",
    "SemanticPooling",
    "StopGradient",
    "ZeroPaddedAveragePooling2D",
    "group_lip_probabilities",
]
