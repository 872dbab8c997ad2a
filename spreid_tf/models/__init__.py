"""SPReID models: backbones, the dilated InceptionV3*, the parsing model, SPReID and baseline."""

from spreid_tf.layers import group_lip_probabilities
from spreid_tf.models.backbones import BACKBONES, build_backbone
from spreid_tf.models.inception_dilated import build_dilated_inception_v3, transfer_weights
from spreid_tf.models.mobilenet_dilated import build_dilated_mobilenet_v2
from spreid_tf.models.parsing import build_parsing_model
from spreid_tf.models.spreid import (
    VARIANTS,
    build_baseline_model,
    build_pooling_probe,
    build_spreid_model,
    combine_embeddings,
    embedding_dim,
)

__all__ = [
    "BACKBONES",
    "VARIANTS",
    "build_backbone",
    "build_baseline_model",
    "build_dilated_inception_v3",
    "build_dilated_mobilenet_v2",
    "build_parsing_model",
    "build_pooling_probe",
    "build_spreid_model",
    "combine_embeddings",
    "embedding_dim",
    "group_lip_probabilities",
    "transfer_weights",
]
