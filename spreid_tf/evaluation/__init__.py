"""Evaluation: one feature extraction, one protocol per conversion, one distance.

- `features`: l2-normalised embeddings of converted splits (cached), ids, images.
- `protocols`: which protocol scores a conversion, the default distance, scoring, chance,
  nearest-neighbour search.
- `reid`: a model's numbers (`evaluate_model`, training's end evaluation and the demo) and
  the evaluate binary's report (`evaluate_run`).
- `parsing`: LIP scores of a parsing model.
"""

from spreid_tf.evaluation.features import FeatureSet, extract_features, l2_normalize, split_features
from spreid_tf.evaluation.parsing import evaluate_parsing
from spreid_tf.evaluation.protocols import DEFAULT_METRIC, describe, protocol_of, score
from spreid_tf.evaluation.reid import evaluate_model, evaluate_run

__all__ = ["DEFAULT_METRIC", "FeatureSet", "describe", "evaluate_model", "evaluate_parsing", "evaluate_run",
           "extract_features", "l2_normalize", "protocol_of", "score", "split_features"]
