"""Step-wise learning-rate schedules against hand-computed values."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from spreid_tf.training import schedules


def _lr(schedule, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


@pytest.mark.parametrize("step, expected", [
    (0, 0.01), (19_999, 0.01), (20_000, 0.009), (39_999, 0.009), (40_000, 0.0081),
    (100_000, 0.01 * 0.9 ** 5), (199_999, 0.01 * 0.9 ** 9),
])
def test_exponential_paper_phase1(step, expected):
    """200K iterations, decayed 10 times by 0.9: a new rate every 20K steps."""
    schedule = schedules.build_schedule("exponential", 0.01, 200_000)
    assert _lr(schedule, step) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("step, expected", [
    (0, 0.01), (2_999, 0.01), (3_000, 0.01 * 0.9 ** 0.9), (6_000, 0.01 * 0.8 ** 0.9),
    (15_000, 0.01 * 0.5 ** 0.9), (29_999, 0.01 * 0.1 ** 0.9), (30_000, 0.0),
])
def test_poly_stepwise(step, expected):
    """lr = base * (1 - floor(step / 3000) * 3000 / 30000) ** 0.9 over 30K steps."""
    schedule = schedules.build_schedule("poly", 0.01, 30_000, power=0.9)
    assert _lr(schedule, step) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    # 0.01 * 0.9 ** 0.9 = 0.0090953... by hand.
    if step == 3_000:
        assert _lr(schedule, step) == pytest.approx(0.0090953, rel=1e-4)


def test_uneven_total_uses_integer_intervals():
    """total 25 steps, 10 decays: k = floor(step * 10 / 25), i.e. 2.5 steps per interval."""
    schedule = schedules.build_schedule("exponential", 1.0, 25, num_decays=10, decay_rate=0.5)
    values = [_lr(schedule, s) for s in range(25)]
    expected = [0.5 ** ((s * 10) // 25) for s in range(25)]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert len(set(values)) == 10  # ten distinct rates over the run


def test_phase2_and_parsing_head_rates():
    phase2 = schedules.build_schedule("exponential", 0.001, 50_000)
    assert _lr(phase2, 5_000) == pytest.approx(0.0009, rel=1e-6)
    head = schedules.build_schedule("exponential", 0.1, 30_000)
    assert _lr(head, 29_999) == pytest.approx(0.1 * 0.9 ** 9, rel=1e-6)


def test_constant_and_serialization():
    assert _lr(schedules.build_schedule("constant", 0.3, 10), 7) == pytest.approx(0.3)
    for name in schedules.SCHEDULES:
        schedule = schedules.build_schedule(name, 0.02, 1000)
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
        assert type(restored) is type(schedule)
        assert _lr(restored, 555) == pytest.approx(_lr(schedule, 555))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown schedule"):
        schedules.build_schedule("cosine", 0.01, 10)
    with pytest.raises(ValueError, match="total_steps"):
        schedules.build_schedule("exponential", 0.01, 0)
    with pytest.raises(ValueError, match="base_lr"):
        schedules.build_schedule("poly", 0.0, 10)


def test_linear_warmup_hand_values_and_serialization():
    # 10 warm-up steps from 0.1x, then the exponential schedule (100 steps, 10 decays of 0.9).
    schedule = schedules.build_schedule("exponential", 0.02, 100, warmup_steps=10, warmup_factor=0.1)
    expected = {0: 0.002, 5: 0.02 * 0.55, 9: 0.02 * 0.91, 10: 0.018, 25: 0.02 * 0.81, 99: 0.02 * 0.9 ** 9}
    for step, value in expected.items():
        assert _lr(schedule, step) == pytest.approx(value, rel=1e-6), step
    restored = schedules.LinearWarmup.from_config(schedule.get_config())
    assert [_lr(restored, s) for s in expected] == pytest.approx([_lr(schedule, s) for s in expected])
    assert not isinstance(schedules.build_schedule("constant", 0.1, 10), schedules.LinearWarmup)
    with pytest.raises(ValueError, match="warmup_factor"):
        schedules.build_schedule("constant", 0.1, 10, warmup_steps=3, warmup_factor=1.5)
