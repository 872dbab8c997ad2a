"""Human-parsing scores (LIP protocol): overall accuracy, mean class accuracy, mean IoU."""

from __future__ import annotations

import numpy as np

from spreid_tf import lip


def confusion_matrix(labels, predictions, num_classes: int = lip.NUM_CLASSES,
                     ignore_label: int = lip.IGNORE_LABEL) -> np.ndarray:
    """`(num_classes, num_classes)` int64 counts, rows = ground truth, columns = prediction.

    Pixels whose label is `ignore_label` are left out. Labels outside
    `[0, num_classes)` (other than the ignore label) are an error.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions must have the same number of pixels, "
                         f"got {labels.size} and {predictions.size}")
    keep = labels != ignore_label
    labels, predictions = labels[keep], predictions[keep]
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}) or equal ignore_label={ignore_label}, "
                             f"found values {sorted(set(values[(values < 0) | (values >= num_classes)].tolist()))[:5]}")
    return np.bincount(labels * num_classes + predictions, minlength=num_classes ** 2) \
        .reshape(num_classes, num_classes)


def segmentation_scores(confusion: np.ndarray) -> dict:
    """Scores from a confusion matrix, as LIP's evaluation reports them.

    Returns:
        {"pixel_accuracy", "mean_accuracy", "mean_iou", "per_class_iou" (list, NaN for a class
        that is in neither the ground truth nor the predictions)}. Mean accuracy averages over
        classes present in the ground truth; mean IoU over classes with a non-empty union.
    """
    confusion = np.asarray(confusion, np.float64)
    total = confusion.sum()
    if total == 0:
        raise ValueError("empty confusion matrix: no labelled pixels were scored")
    true_positive = np.diag(confusion)
    gt_count = confusion.sum(axis=1)
    union = gt_count + confusion.sum(axis=0) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(gt_count > 0, true_positive / gt_count, np.nan)
        iou = np.where(union > 0, true_positive / union, np.nan)
    return {
        "pixel_accuracy": float(true_positive.sum() / total),
        "mean_accuracy": float(np.nanmean(accuracy)),
        "mean_iou": float(np.nanmean(iou)),
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
    }


def group_confusion(confusion: np.ndarray, label_groups) -> np.ndarray:
    """Sums a label confusion matrix into groups: `label_groups[i]` is label i's group index.

    E.g. `lip.label_to_segmentation_group()` gives SPReID's five regions (background,
    head, upper body, lower body, shoes), the regions its pooling maps cover.
    """
    confusion = np.asarray(confusion)
    label_groups = np.asarray(label_groups, np.int64)
    if label_groups.shape != (confusion.shape[0],):
        raise ValueError(f"label_groups must give a group for each of the {confusion.shape[0]} labels, "
                         f"got {label_groups.shape[0]}")
    num_groups = int(label_groups.max()) + 1
    onehot = np.eye(num_groups, dtype=np.int64)[label_groups]  # (labels, groups)
    return onehot.T @ confusion.astype(np.int64) @ onehot
