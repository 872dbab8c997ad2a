"""The demo, reduced: every stage runs (conversion, parser, baseline and SPReID per seed, the
ground-truth-mask and uniform-map probes, evaluation) and the numbers come out in the documented shape."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from spreid_tf import demo

REDUCED = demo.DemoSettings(train_ids=8, images_per_train_id=3, test_ids=8, gallery_per_test_id=2, distractors=2,
                            lip_train=8, lip_val=4, input_size=(96, 80), parsing_crop=(96, 80), parsing_steps=2,
                            reid_steps=6, parsing_batch=2, reid_batch=4, warmup_steps=2, precise_bn_batches=2,
                            seeds=(0,))


@pytest.mark.slow
def test_reduced_demo_runs_every_stage_and_reports_every_row(tmp_path):
    logging.getLogger("spreid_tf.data.convert").setLevel(logging.ERROR)
    result = demo.run_demo(tmp_path, REDUCED)
    assert result.num_queries == 8 and result.num_gallery == 8 * 3 + 2
    document = result.as_json()
    assert set(document["rows"]) == {"untrained", "baseline", "spreid_w_fg", "spreid_w_fg_gt_masks",
                                     "spreid_w_fg_uniform_maps"}
    for name, row in document["rows"].items():
        assert len(row["mAP_per_seed"]) == len(row["rank1_per_seed"]) == 1, name
        assert row["mAP"] == pytest.approx(np.mean(row["mAP_per_seed"]))
        assert all(0 <= v <= 1 for v in row["mAP_per_seed"] + row["rank1_per_seed"]), name
    assert set(document["parsing"]) == {"group_mean_iou", "mean_iou", "pixel_accuracy"}
    json.dumps(document)
    for key in demo.TRAINED:
        assert [r["num_identities"] for r in result.training[key]] == [8]
        assert all(np.isfinite([r["first"], r["min"], r["last"]]).all() for r in result.training[key])
    table = demo.format_table(result)
    assert "| Model | mAP | rank-1 | rank-10 | mAP per seed | rank-1 per seed |" in table
    assert "ground-truth part masks" in table and "five-group mean IoU" in table
    runs = tmp_path / "runs"
    for path in ("parsing/parsing.keras", "parsing/config.json", "parsing/eval.json", "baseline_seed0/model.keras",
                 "baseline_seed0/config.json", "spreid_w_fg_seed0/model.keras"):
        assert (runs / path).exists(), path
    assert list((runs / "baseline_seed0" / "train").glob("events.out.tfevents.*"))


def test_ground_truth_maps_are_area_fractions_of_the_groups():
    masks = np.zeros((1, 4, 4), np.uint8)
    masks[0, :2, :2] = 13   # face -> head
    masks[0, 2:, :] = 9     # pants -> lower body
    masks[0, 2, 0] = 18     # left shoe -> shoes
    maps = demo.ground_truth_maps(masks, (2, 2))
    assert maps.shape == (1, 2, 2, 5)
    np.testing.assert_allclose(maps[0, 0, 0], [1, 1, 0, 0, 0])       # all face
    np.testing.assert_allclose(maps[0, 0, 1], [0, 0, 0, 0, 0])       # background
    np.testing.assert_allclose(maps[0, 1, 0], [1, 0, 0, 0.75, 0.25])  # 3 pants pixels, 1 shoe
    np.testing.assert_allclose(maps[0, 1, 1], [1, 0, 0, 1, 0])
