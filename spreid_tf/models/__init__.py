"""SPReID models: backbones, the dilated InceptionV3*, the parsing model, SPReID and baseline."""

from spreid_tf.layers import group_lip_probabilities
from spreid_tf.models.backbones import BACKBONES, build_backbone
from spreid_tf.models.inception_dilated import build_dilated_inception_v3, transfer_weights
from spreid_tf.models.parsing import build_parsing_model
from spreid_tf.models.spreid import (
    EMBEDDING_DIMS,
    VARIANTS,
    build_baseline_model,
    build_pooling_probe,
    build_spreid_model,
    combine_embeddings,
)

__all__ = [
    "BACKBONES",
    "EMBEDDING_DIMS",
    "VARIANTS",
    "build_backbone",
    "build_baseline_model",
    "build_dilated_inception_v3",
    "build_parsing_model",
    "build_pooling_probe",
    "build_spreid_model",
    "combine_embeddings",
    "group_lip_probabilities",
    "transfer_weights",
]
