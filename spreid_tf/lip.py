"""Facts about the LIP human-parsing labels (one source of truth).

LIP ("Look into Person", Gong et al., CVPR 2017) annotates 20 labels. SPReID sums
the softmax probabilities of these labels into five soft maps, exactly as the
authors' code does (see shared DESIGN.md):

- foreground = 1 - p(background)
- head       = hat, hair, sunglasses, face
- upper-body = glove, upper-clothes, dress, coat, jumpsuits, scarf, left-arm, right-arm
- lower-body = pants, skirt, left-leg, right-leg
- shoes      = socks, left-shoe, right-shoe
"""

from __future__ import annotations

LABEL_NAMES: tuple[str, ...] = (
    "background",  # 0
    "hat",  # 1
    "hair",  # 2
    "glove",  # 3
    "sunglasses",  # 4
    "upper-clothes",  # 5
    "dress",  # 6
    "coat",  # 7
    "socks",  # 8
    "pants",  # 9
    "jumpsuits",  # 10
    "scarf",  # 11
    "skirt",  # 12
    "face",  # 13
    "left-arm",  # 14
    "right-arm",  # 15
    "left-leg",  # 16
    "right-leg",  # 17
    "left-shoe",  # 18
    "right-shoe",  # 19
)
NUM_CLASSES: int = len(LABEL_NAMES)
BACKGROUND: int = 0
# Pixels with this value in a mask are not scored (DeepLab's convention).
IGNORE_LABEL: int = 255

# A horizontal flip turns a left limb into a right one.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((14, 15), (16, 17), (18, 19))

# The four part groups; the foreground map is 1 - p(background).
PART_GROUPS: dict[str, tuple[int, ...]] = {
    "head": (1, 2, 4, 13),
    "upper_body": (3, 5, 6, 7, 10, 11, 14, 15),
    "lower_body": (9, 12, 16, 17),
    "shoes": (8, 18, 19),
}
# Channel order of the five grouped maps.
GROUP_NAMES: tuple[str, ...] = ("foreground",) + tuple(PART_GROUPS)
NUM_GROUPS: int = len(GROUP_NAMES)


# The five regions a parser is scored on for SPReID (background and the four parts);
# "foreground" of GROUP_NAMES is their complement of background, not a region of its own.
SEGMENTATION_GROUP_NAMES: tuple[str, ...] = ("background",) + tuple(PART_GROUPS)


def label_to_segmentation_group() -> list[int]:
    """LIP label -> index into SEGMENTATION_GROUP_NAMES (0 background, 1 head, ..., 4 shoes)."""
    groups = [0] * NUM_CLASSES
    for index, labels in enumerate(PART_GROUPS.values(), start=1):
        for label in labels:
            groups[label] = index
    return groups


def flip_permutation() -> list[int]:
    """Label permutation applied to a mask (or to class channels) by a horizontal flip."""
    perm = list(range(NUM_CLASSES))
    for left, right in FLIP_PAIRS:
        perm[left], perm[right] = right, left
    return perm


def group_matrix() -> list[list[float]]:
    """(20, 4) 0/1 matrix mapping LIP label probabilities to the four part groups."""
    matrix = [[0.0] * len(PART_GROUPS) for _ in range(NUM_CLASSES)]
    for j, labels in enumerate(PART_GROUPS.values()):
        for label in labels:
            matrix[label][j] = 1.0
    return matrix
