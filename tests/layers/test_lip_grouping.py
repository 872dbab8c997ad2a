import numpy as np
import pytest

from numpy_reference import softmax
from spreid_tf.layers import GroupLIPProbabilities, group_lip_probabilities

# The SPReID authors' sets, written out independently of spreid_tf.lip.
AUTHORS_SETS = [
    {1, 2, 4, 13},  # head: hat, hair, sunglasses, face
    {3, 5, 6, 7, 10, 11, 14, 15},  # upper body
    {9, 12, 16, 17},  # lower body
    {8, 18, 19},  # shoes
]


@pytest.mark.parametrize("label", range(20))
def test_one_hot_label_lands_in_its_group(label):
    probabilities = np.zeros((1, 20), "float32")
    probabilities[0, label] = 1.0
    maps = np.asarray(group_lip_probabilities(probabilities))[0]
    expected = [0.0 if label == 0 else 1.0] + [1.0 if label in s else 0.0 for s in AUTHORS_SETS]
    np.testing.assert_array_equal(maps, expected)


def test_random_probabilities_sum_to_the_authors_sets():
    probabilities = softmax(np.random.default_rng(0).normal(size=(2, 4, 3, 20))).astype("float32")
    maps = np.asarray(GroupLIPProbabilities()(probabilities))
    assert maps.shape == (2, 4, 3, 5)
    np.testing.assert_allclose(maps[..., 0], 1.0 - probabilities[..., 0], rtol=1e-6, atol=1e-6)
    for j, labels in enumerate(AUTHORS_SETS):
        np.testing.assert_allclose(maps[..., j + 1], probabilities[..., sorted(labels)].sum(-1), atol=1e-6)
    # The four part groups cover every non-background label exactly once.
    np.testing.assert_allclose(maps[..., 1:].sum(-1), maps[..., 0], atol=1e-6)


def test_wrong_channel_count_is_an_error():
    with pytest.raises(ValueError, match="expects 20 LIP channels"):
        group_lip_probabilities(np.zeros((1, 19), "float32"))
