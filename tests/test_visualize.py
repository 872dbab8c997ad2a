import cv2
import numpy as np
import pytest

from spreid_tf import lip, visualize


def _count(image, colour, tolerance=0):
    return int((np.abs(image.astype(int) - colour).sum(-1) <= tolerance).sum())


def test_cmc_plot_draws_each_curve_in_its_colour():
    image = visualize.draw_cmc({"a": np.linspace(0.5, 1.0, 20), "b": np.linspace(0.2, 0.9, 20)})
    assert image.shape[0] == 480 and image.shape[1] > 640 and image.dtype == np.uint8
    for colour in visualize._LINE_COLOURS[:2]:
        assert _count(image, colour, 10) > 100
    with pytest.raises(ValueError, match="at least one curve"):
        visualize.draw_cmc({})


def test_cmc_legend_beside_the_plot_long_names_whole_and_a_y_label():
    short = visualize.draw_cmc({"a": np.full(20, 0.1)})
    long_name = "spreid_w_fg_inception_v3 + baseline_resnet50 (combined) + re-ranking"
    wide = visualize.draw_cmc({"a": np.full(20, 0.1), long_name: np.full(20, 0.1)})
    # The legend's column widens with the name instead of cutting it.
    needed = cv2.getTextSize(f"{long_name}: rank-1 10.0%", cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0]
    assert wide.shape[1] >= 640 + needed
    assert wide.shape[1] > short.shape[1]
    # Curves at the bottom of the plot are not covered: the plot area (x < 630) holds no legend
    # text, only the two curves; the legend column (x >= 640) holds both colours' swatches.
    legend = wide[:, 640:]
    for colour in visualize._LINE_COLOURS[:2]:
        assert _count(legend, colour, 10) > 20
    # Curve 1 lies exactly on curve 0: its markers differ, so both colours stay visible in the plot.
    plot = wide[:, :630]
    for colour in visualize._LINE_COLOURS[:2]:
        assert _count(plot, colour, 10) > 50
    # The y label: dark pixels in the left margin, in a tall (rotated) run around the middle.
    margin = short[:, :24].min(-1) < 128
    rows = np.flatnonzero(margin.any(1))
    assert rows.size and rows.max() - rows.min() > 60


def test_ranked_list_borders_follow_correctness():
    query = np.full((64, 32, 3), 200, np.uint8)
    gallery = [np.full((64, 32, 3), 100, np.uint8)] * 3
    image = visualize.ranked_list(query, gallery, [True, False, None], height=64, border=4)
    border_pixels = (32 + 8) * (64 + 8) - 32 * 64
    # Each border, plus the key's swatch (13 x 11 pixels) of that colour.
    swatch = 13 * 11
    assert _count(image, visualize.GREEN) == _count(image, visualize.RED) == border_pixels + swatch
    assert _count(image, visualize.GREY) >= border_pixels + swatch
    with pytest.raises(ValueError, match="3 gallery images but 2"):
        visualize.ranked_list(query, gallery, [True, False])
    with pytest.raises(ValueError, match="3 gallery images but 1 text"):
        visualize.ranked_list(query, gallery, [True, False, True], gallery_lines=[["x"]])


def test_ranked_list_prints_text_under_each_tile_and_a_key_without_unused_colours():
    query = np.full((64, 32, 3), 200, np.uint8)
    gallery = [np.full((64, 32, 3), 100, np.uint8)] * 2
    plain = visualize.ranked_list(query, gallery, [True, False], height=64)
    assert _count(plain, visualize.GREY) == 0  # no "not scored" swatch when every tile is scored
    texts = [["pid 12", "cam 3", "d 0.123"], ["pid 7", "cam 1", "d 0.456"]]
    labelled = visualize.ranked_list(query, gallery, [True, False], height=64,
                                     query_lines=["pid 12", "cam 2"], gallery_lines=texts)
    assert labelled.shape[0] == plain.shape[0] + 3 * 13 + 4
    below = labelled[plain.shape[0] - 30:plain.shape[0] + 3 * 13 - 30]  # the text rows
    assert (below.min(-1) < 100).sum() > 50


def test_camera_labels_are_one_based():
    assert visualize.camera_label(0) == "cam 1"
    assert visualize.camera_label(np.int64(5)) == "cam 6"


def test_parsing_figure_absolute_scale_colour_bar_label_key_and_atomic_png(tmp_path):
    maps = np.random.default_rng(0).uniform(size=(8, 4, 5)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 20, (128, 64))
    figure = visualize.parsing_figure(np.zeros((128, 64, 3), np.uint8), maps, labels, height=96)
    assert figure.shape[0] == 96 + 16 + 8 and figure.shape[1] > 7 * 48 + 8 * 4
    path = tmp_path / "sub" / "figure.png"
    visualize.write_png(path, figure)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, figure)
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]
    with pytest.raises(ValueError, match="maps must be"):
        visualize.parsing_figure(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 4)))


def test_parsing_figure_flat_low_map_is_not_drawn_hot():
    image = np.zeros((64, 32, 3), np.uint8)
    maps = np.zeros((4, 2, 5), np.float32)
    maps[..., 0] = 0.05  # flat and low: must look cold, not scaled up to its own maximum
    maps[..., 1] = 1.0
    figure = visualize.parsing_figure(image, maps, height=64)
    first, second = figure[24:88, 4 + 32 + 4:4 + 32 + 4 + 32], figure[24:88, 4 + 2 * (32 + 4):4 + 2 * (32 + 4) + 32]
    # Over a black image the overlay is 0.55 * JET(value): blue-ish for 0.05, dark red for 1.
    assert first[..., 2].mean() > first[..., 0].mean() + 50
    assert second[..., 0].mean() > second[..., 2].mean() + 50


def test_parsing_figure_key_names_the_labels_present():
    labels = np.zeros((64, 32), np.int64)
    labels[:20] = 2  # hair
    labels[40:] = 9  # pants
    with_key = visualize.parsing_figure(np.zeros((64, 32, 3), np.uint8), np.zeros((4, 2, 5)), labels, height=64)
    without = visualize.parsing_figure(np.zeros((64, 32, 3), np.uint8), np.zeros((4, 2, 5)), None, height=64)
    key = with_key[:, without.shape[1] + 32 + 4:]
    for value in (2, 9):
        assert _count(key, visualize.LIP_PALETTE[value]) == 9 * 7  # inside the swatch's grey outline
    assert _count(key, visualize.LIP_PALETTE[5]) == 0  # upper-clothes does not occur: no swatch
    assert lip.LABEL_NAMES[2] == "hair"


def test_colour_labels_uses_the_lip_palette():
    out = visualize.colour_labels(np.array([[0, 2], [19, 255]]))
    np.testing.assert_array_equal(out[0, 1], visualize.LIP_PALETTE[2])
    np.testing.assert_array_equal(out[1, 0], visualize.LIP_PALETTE[19])
    np.testing.assert_array_equal(out[1, 1], 0)
