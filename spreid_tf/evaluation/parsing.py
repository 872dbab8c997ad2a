"""Human-parsing evaluation on LIP-style records: pixel accuracy, mean accuracy, mean IoU,
per label and over SPReID's five regions."""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from spreid_tf import lip, run_folder, segmentation_metrics
from spreid_tf.data import pipelines

DEFAULT_BATCH_SIZE = 8  # 512x512 crops: a CPU's memory


def evaluate_parsing(model: keras.Model, files: Sequence[str | os.PathLike], crop_size: tuple[int, int],
                     batch_size: int = DEFAULT_BATCH_SIZE, num_classes: int = lip.NUM_CLASSES) -> dict:
    """Pixel accuracy, mean accuracy and mean IoU of a parsing model on LIP-style records.

    Images are fitted into `crop_size` and padded (`pipelines.parsing_dataset` with
    training=False); padded pixels carry the ignore label and are not scored.
    """
    predict = tf.function(lambda x: tf.argmax(model(x, training=False)[run_folder.PROBABILITIES], axis=-1,
                                              output_type=tf.int32), reduce_retracing=True)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    dataset = pipelines.parsing_dataset([str(f) for f in files], batch_size=batch_size, crop_size=tuple(crop_size),
                                        training=False)
    for images, masks in dataset:
        confusion += segmentation_metrics.confusion_matrix(masks.numpy(), predict(images).numpy(), num_classes)
    scores = segmentation_metrics.segmentation_scores(confusion)
    names = lip.LABEL_NAMES if num_classes == lip.NUM_CLASSES else [str(i) for i in range(num_classes)]
    scores["iou"] = dict(zip(names, scores.pop("per_class_iou")))
    if num_classes == lip.NUM_CLASSES:
        # SPReID pools with five regions, not 20 labels: score those too.
        grouped = segmentation_metrics.segmentation_scores(
            segmentation_metrics.group_confusion(confusion, lip.label_to_segmentation_group()))
        scores["group_mean_iou"] = grouped["mean_iou"]
        scores["group_pixel_accuracy"] = grouped["pixel_accuracy"]
        scores["group_iou"] = dict(zip(lip.SEGMENTATION_GROUP_NAMES, grouped["per_class_iou"]))
    scores["num_pixels"] = int(confusion.sum())
    return scores
