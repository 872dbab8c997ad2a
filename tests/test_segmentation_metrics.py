import numpy as np
import pytest

from spreid_tf.segmentation_metrics import confusion_matrix, segmentation_scores


def test_hand_computed_three_class_case():
    labels = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    predictions = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    confusion = confusion_matrix(labels, predictions, num_classes=3)
    # gt 0: {0, 1}; gt 1: {1, 1, 0}; gt 2: {2, 0}; the 255 pixel is ignored.
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [1, 2, 0], [1, 0, 1]])
    scores = segmentation_scores(confusion)
    assert scores["pixel_accuracy"] == pytest.approx(4 / 7)
    assert scores["mean_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    # IoU: class 0: 1 / (2 + 3 - 1); class 1: 2 / (3 + 3 - 2); class 2: 1 / (2 + 1 - 1).
    assert scores["per_class_iou"] == pytest.approx([1 / 4, 2 / 4, 1 / 2])
    assert scores["mean_iou"] == pytest.approx((1 / 4 + 1 / 2 + 1 / 2) / 3)


def test_absent_classes_are_left_out_of_the_means():
    confusion = confusion_matrix([0, 0, 1], [0, 0, 1], num_classes=20)
    scores = segmentation_scores(confusion)
    assert scores["mean_iou"] == 1.0 and scores["mean_accuracy"] == 1.0
    assert scores["per_class_iou"][5] is None


def test_errors():
    with pytest.raises(ValueError, match="same number of pixels"):
        confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="found values \\[20\\]"):
        confusion_matrix([0, 20], [0, 0])
    with pytest.raises(ValueError, match="empty confusion"):
        segmentation_scores(np.zeros((3, 3)))


def test_group_confusion_equals_relabelling_the_pixels():
    from spreid_tf import lip
    from spreid_tf.segmentation_metrics import group_confusion

    rng = np.random.default_rng(0)
    labels = rng.integers(0, lip.NUM_CLASSES, 500)
    predictions = rng.integers(0, lip.NUM_CLASSES, 500)
    groups = np.asarray(lip.label_to_segmentation_group())
    # Hand-checked facts of the grouping: face is head, coat is upper body, skirt lower, socks shoes.
    assert [groups[i] for i in (0, 13, 7, 12, 8)] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(
        group_confusion(confusion_matrix(labels, predictions, lip.NUM_CLASSES), groups),
        confusion_matrix(groups[labels], groups[predictions], num_classes=5))
    with pytest.raises(ValueError, match="group for each"):
        group_confusion(np.zeros((3, 3)), [0, 1])
