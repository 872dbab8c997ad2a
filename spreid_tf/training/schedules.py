"""Step-wise learning-rate schedules of the SPReID paper (decayed 10 times per run).

Both schedules split a run of `total_steps` iterations into `num_decays` equal
intervals and hold the learning rate constant inside each one. With
`k = floor(step * num_decays / total_steps)` (integer arithmetic, so no rounding
surprises when `total_steps` is not a multiple of `num_decays`):

- "exponential" (the paper: "decayed 10 times by 0.9, exponential shift"):
      lr(step) = base_lr * decay_rate ** k
  e.g. 200K iterations, 10 decays: 0.01 for steps 0-19,999, 0.009 from 20,000,
  0.0081 from 40,000, ..., 0.01 * 0.9**9 = 0.003874 for the last 20,000.
- "poly" (the authors' Caffe runs, poly evaluated once per interval):
      lr(step) = base_lr * (1 - k / num_decays) ** power
  e.g. 30K iterations, power 0.9: 0.01 for steps 0-2,999, 0.01 * 0.9**0.9 = 0.009095
  from 3,000, ..., 0.01 * 0.1**0.9 = 0.001259 for the last 3,000.
- "constant": lr(step) = base_lr (tests and smoke runs).

Any of them may start with a linear warm-up (fast-reid's WARMUP_ITERS, Goyal et al.
2017): over the first `warmup_steps` steps the rate rises linearly from
`warmup_factor * lr(0)` to the schedule's value,

      lr'(step) = lr(step) * (warmup_factor + (1 - warmup_factor) * min(step / warmup_steps, 1)).

From random weights the first steps' gradients are large (norms of several
hundred) and the full rate at once diverges (the loss of the demo's SPReID run
once went 5.1 -> 8.5); the paper, from ImageNet weights, needs none (default 0).

`step` is the optimizer's iteration count (restored from checkpoints, so a resumed
run continues where the schedule left off). Past `total_steps` the exponential
schedule keeps decaying and the poly one stays at 0.
"""

from __future__ import annotations

import keras
from keras import ops

SCHEDULES = ("exponential", "poly", "constant")


def _check_common(base_lr: float, total_steps: int, num_decays: int) -> None:
    if not base_lr > 0:
        raise ValueError(f"base_lr must be positive, got {base_lr}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
    if isinstance(num_decays, bool) or not isinstance(num_decays, int) or num_decays < 1:
        raise ValueError(f"num_decays must be a positive int, got {num_decays!r}")


def _interval_index(step, total_steps: int, num_decays: int):
    """floor(step * num_decays / total_steps) as float32, computed on integers."""
    step = ops.cast(step, "int64")
    k = ops.floor_divide(step * num_decays, total_steps)
    return ops.cast(k, "float32")


@keras.saving.register_keras_serializable(package="spreid_tf")
class StepwiseExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = base_lr * decay_rate ** floor(step * num_decays / total_steps)."""

    def __init__(self, base_lr: float, total_steps: int, num_decays: int = 10, decay_rate: float = 0.9):
        _check_common(base_lr, total_steps, num_decays)
        if not 0 < decay_rate <= 1:
            raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate}")
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.num_decays = int(num_decays)
        self.decay_rate = float(decay_rate)

    def __call__(self, step):
        k = _interval_index(step, self.total_steps, self.num_decays)
        return self.base_lr * ops.power(ops.cast(self.decay_rate, "float32"), k)

    def get_config(self) -> dict:
        return {"base_lr": self.base_lr, "total_steps": self.total_steps,
                "num_decays": self.num_decays, "decay_rate": self.decay_rate}


@keras.saving.register_keras_serializable(package="spreid_tf")
class StepwisePolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = base_lr * (1 - floor(step * num_decays / total_steps) / num_decays) ** power."""

    def __init__(self, base_lr: float, total_steps: int, num_decays: int = 10, power: float = 0.9):
        _check_common(base_lr, total_steps, num_decays)
        if not power > 0:
            raise ValueError(f"power must be positive, got {power}")
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.num_decays = int(num_decays)
        self.power = float(power)

    def __call__(self, step):
        k = _interval_index(step, self.total_steps, self.num_decays)
        remaining = ops.maximum(1.0 - k / self.num_decays, 0.0)
        return self.base_lr * ops.power(remaining, self.power)

    def get_config(self) -> dict:
        return {"base_lr": self.base_lr, "total_steps": self.total_steps,
                "num_decays": self.num_decays, "power": self.power}


@keras.saving.register_keras_serializable(package="spreid_tf")
class ConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr = base_lr at every step."""

    def __init__(self, base_lr: float):
        if not base_lr > 0:
            raise ValueError(f"base_lr must be positive, got {base_lr}")
        self.base_lr = float(base_lr)

    def __call__(self, step):
        return ops.cast(self.base_lr, "float32") + 0.0 * ops.cast(step, "float32")

    def get_config(self) -> dict:
        return {"base_lr": self.base_lr}


@keras.saving.register_keras_serializable(package="spreid_tf")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Scales `schedule` by warmup_factor + (1 - warmup_factor) * min(step / warmup_steps, 1)."""

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule, warmup_steps: int,
                 warmup_factor: float = 0.1):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"warmup_steps must be a positive int, got {warmup_steps!r}")
        if not 0 <= warmup_factor <= 1:
            raise ValueError(f"warmup_factor must be in [0, 1], got {warmup_factor}")
        if isinstance(schedule, dict):  # from get_config
            schedule = keras.optimizers.schedules.deserialize(schedule)
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)

    def __call__(self, step):
        progress = ops.minimum(ops.cast(step, "float32") / self.warmup_steps, 1.0)
        return self.schedule(step) * (self.warmup_factor + (1.0 - self.warmup_factor) * progress)

    def get_config(self) -> dict:
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule),
                "warmup_steps": self.warmup_steps, "warmup_factor": self.warmup_factor}


def build_schedule(
    name: str,
    base_lr: float,
    total_steps: int,
    num_decays: int = 10,
    decay_rate: float = 0.9,
    power: float = 0.9,
    warmup_steps: int = 0,
    warmup_factor: float = 0.1,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Builds one of SCHEDULES (see the module docstring for the formulas).

    Args:
        name: "exponential", "poly" or "constant".
        base_lr: learning rate at step 0.
        total_steps: iterations of the whole run (not of this process: resumed runs
            pass the same value).
        num_decays: number of equal intervals (the paper: 10).
        decay_rate: factor per interval of "exponential".
        power: exponent of "poly".
        warmup_steps: steps of linear warm-up (0: none).
        warmup_factor: the warm-up's starting fraction of the rate.

    Returns:
        A serializable keras LearningRateSchedule.
    """
    if name == "exponential":
        schedule = StepwiseExponentialDecay(base_lr, total_steps, num_decays, decay_rate)
    elif name == "poly":
        schedule = StepwisePolyDecay(base_lr, total_steps, num_decays, power)
    elif name == "constant":
        schedule = ConstantSchedule(base_lr)
    else:
        raise ValueError(f"unknown schedule {name!r}; expected one of {SCHEDULES}")
    return LinearWarmup(schedule, warmup_steps, warmup_factor) if warmup_steps else schedule
