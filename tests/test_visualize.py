import cv2
import numpy as np
import pytest

from spreid_tf import visualize


def test_cmc_plot_draws_each_curve_in_its_colour():
    image = visualize.draw_cmc({"a": np.linspace(0.5, 1.0, 20), "b": np.linspace(0.2, 0.9, 20)})
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    for colour in visualize._LINE_COLOURS[:2]:
        assert (np.abs(image.astype(int) - colour).sum(-1) < 10).sum() > 100
    with pytest.raises(ValueError, match="at least one curve"):
        visualize.draw_cmc({})


def test_ranked_list_borders_follow_correctness():
    query = np.full((64, 32, 3), 200, np.uint8)
    gallery = [np.full((64, 32, 3), 100, np.uint8)] * 3
    image = visualize.ranked_list(query, gallery, [True, False, None], height=64, border=4)
    green = (np.abs(image.astype(int) - visualize.GREEN).sum(-1) == 0).sum()
    red = (np.abs(image.astype(int) - visualize.RED).sum(-1) == 0).sum()
    grey = (np.abs(image.astype(int) - visualize.GREY).sum(-1) == 0).sum()
    border_pixels = (32 + 8) * (64 + 8) - 32 * 64
    assert green == red == border_pixels and grey >= border_pixels
    with pytest.raises(ValueError, match="3 gallery images but 2"):
        visualize.ranked_list(query, gallery, [True, False])


def test_parsing_figure_and_atomic_png(tmp_path):
    maps = np.random.default_rng(0).uniform(size=(8, 4, 5)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 20, (128, 64))
    figure = visualize.parsing_figure(np.zeros((128, 64, 3), np.uint8), maps, labels, height=96)
    assert figure.shape[0] == 96 + 16 + 8 and figure.shape[1] == 7 * 48 + 8 * 4
    path = tmp_path / "sub" / "figure.png"
    visualize.write_png(path, figure)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, figure)
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]
    with pytest.raises(ValueError, match="maps must be"):
        visualize.parsing_figure(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 4)))


def test_colour_labels_uses_the_lip_palette():
    out = visualize.colour_labels(np.array([[0, 2], [19, 255]]))
    np.testing.assert_array_equal(out[0, 1], visualize.LIP_PALETTE[2])
    np.testing.assert_array_equal(out[1, 0], visualize.LIP_PALETTE[19])
    np.testing.assert_array_equal(out[1, 1], 0)
