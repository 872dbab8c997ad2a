"""The demo, reduced: the whole pipeline runs and the re-id models rank far above chance."""

from __future__ import annotations

import logging

import pytest

from spreid_tf import demo

# Small and short: every stage runs (conversion, parsing, baseline, SPReID, evaluation).
REDUCED = demo.DemoSettings(train_ids=12, images_per_train_id=4, test_ids=12, gallery_per_test_id=3, distractors=4,
                            lip_train=8, lip_val=4, input_size=(96, 80), parsing_crop=(80, 80), parsing_steps=2,
                            reid_steps=12, parsing_batch=2, reid_batch=4)


@pytest.mark.slow
def test_reduced_demo_ranks_far_above_chance(tmp_path):
    logging.getLogger("spreid_tf.data.convert").setLevel(logging.ERROR)
    result = demo.run_demo(tmp_path, REDUCED)
    chance = result.rows["Chance (random ranking)"]
    assert result.num_queries >= 12
    for name in (demo.BASELINE, demo.SPREID, f"{demo.SPREID} + baseline (combined)"):
        row = result.rows[name]
        assert row["rank1"] >= 3 * chance["rank1"] and row["rank1"] >= 0.2, (name, row, chance)
        assert row["mAP"] >= 2 * chance["mAP"], (name, row, chance)
    for name in (demo.BASELINE, demo.SPREID):
        assert result.training[name]["num_identities"] >= 12
    table = demo.format_table(result)
    assert "| Model | mAP | rank-1 | rank-10 |" in table and "Chance" in table
    runs = tmp_path / "runs"
    for path in ("parsing/parsing.keras", "parsing/config.json", "parsing/eval.json", "baseline/model.keras",
                 "baseline/config.json", "baseline/checkpoint", "spreid_w_fg/model.keras"):
        assert (runs / path).exists(), path
    assert list((runs / "baseline" / "train").glob("events.out.tfevents.*"))
