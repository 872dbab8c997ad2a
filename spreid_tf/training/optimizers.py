"""One optimizer per variable group: per-group learning rates without MultiOptimizer.

Keras 3 has no MultiOptimizer, so the train step (`step.Trainer`) computes all
gradients once, all-reduces them over the replicas, clips them by their global norm
(one norm over every group, as Caffe's `clip_gradients` does), and then hands each
group's slice to that group's optimizer. The parsing model trains its backbone at
the base learning rate and ASPP + classifier at 10x (`PARSING_HEAD_LAYERS`).

The optimizers are `GroupSGD`: keras SGD (Nesterov momentum, decoupled weight decay
`w -= lr * weight_decay * w`, as `keras.optimizers.SGD(weight_decay=...)` does) that
takes gradients which are already summed over the replicas. Plain keras optimizers
all-reduce inside `apply()`; doing it once in the train step instead is what makes
a global clipping norm (and one dynamic loss scale) possible.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras

from spreid_tf import run_folder
from spreid_tf.models.parsing import ASPP_NAME, CLASSIFIER_NAME, DECODER_NAME
from spreid_tf.training import schedules

# Layers of build_parsing_model that train at `head_lr_multiplier` x the base rate.
PARSING_HEAD_LAYERS: tuple[str, ...] = (ASPP_NAME, CLASSIFIER_NAME)


def parsing_head_layers(model: keras.Model) -> tuple[str, ...]:
    """PARSING_HEAD_LAYERS plus the DeepLabv3+ decoder where the parsing model has one."""
    names = {layer.name for layer in model.layers}
    return PARSING_HEAD_LAYERS + ((DECODER_NAME,) if DECODER_NAME in names else ())
# The re-id models' identity classifier (build_baseline_model / build_spreid_model).
REID_CLASSIFIER_LAYERS: tuple[str, ...] = (run_folder.CLASSIFIER,)


@keras.saving.register_keras_serializable(package="spreid_tf")
class GroupSGD(keras.optimizers.SGD):
    """keras SGD whose `apply()` takes gradients already all-reduced over the replicas.

    The TensorFlow backend's optimizers sum gradients over the replicas inside
    `apply()` (`TFOptimizer._all_reduce_sum_gradients`). The train step reduces
    them itself before clipping, so a second reduction would multiply them by the
    number of replicas; this override makes it the identity. The multi-device
    tests check the result against a single-device step.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)


@dataclasses.dataclass
class VariableGroup:
    """Variables trained by one optimizer.

    Attributes:
        name: group name (used in checkpoints and TensorBoard: `lr/<name>`).
        variables: the trainable variables of the group.
        optimizer: the group's optimizer (create it under the strategy's scope).
        lr_multiplier: the group's learning rate over the base rate (informational).
    """

    name: str
    variables: list
    optimizer: keras.optimizers.Optimizer
    lr_multiplier: float = 1.0


def make_sgd(
    schedule: keras.optimizers.schedules.LearningRateSchedule | float,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float | None = 5e-4,
    name: str = "sgd",
) -> GroupSGD:
    """SGD for one group; no clipping here (the train step clips globally)."""
    return GroupSGD(learning_rate=schedule, momentum=momentum, nesterov=nesterov,
                    weight_decay=weight_decay or None, name=name)


def _layer_variables(model: keras.Model, layer_names: Sequence[str]) -> list:
    variables = []
    for layer_name in layer_names:
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            names = [layer.name for layer in model.layers]
            raise ValueError(f"model {model.name!r} has no layer {layer_name!r}; its layers are {names}") from None
        variables.extend(layer.trainable_variables)
    return variables


def split_variables(model: keras.Model, head_layers: Sequence[str]) -> tuple[list, list]:
    """Splits `model.trainable_variables` into (rest, head) by top-level layer names.

    Args:
        model: a functional model.
        head_layers: names of top-level layers whose variables form the head group.

    Returns:
        (variables not in the head layers, variables of the head layers), each in
        `model.trainable_variables` order.
    """
    head_ids = {id(v) for v in _layer_variables(model, head_layers)}
    if not head_ids:
        raise ValueError(f"layers {list(head_layers)} of model {model.name!r} have no trainable variables")
    rest = [v for v in model.trainable_variables if id(v) not in head_ids]
    head = [v for v in model.trainable_variables if id(v) in head_ids]
    return rest, head


def make_variable_groups(
    model: keras.Model,
    *,
    base_lr: float,
    total_steps: int,
    schedule: str = "exponential",
    num_decays: int = 10,
    decay_rate: float = 0.9,
    power: float = 0.9,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float | None = 5e-4,
    head_layers: Sequence[str] = (),
    head_lr_multiplier: float = 1.0,
    warmup_steps: int = 0,
    warmup_factor: float = 0.1,
) -> list[VariableGroup]:
    """Builds the optimizer groups of `model`: "body" (x1) and, if asked, "head".

    With `head_layers` empty or `head_lr_multiplier == 1` there is one group ("all")
    and one optimizer. Otherwise the variables of `head_layers` get their own
    optimizer whose schedule is the same with `base_lr * head_lr_multiplier`.
    Call under the strategy's scope (the optimizers create their slots there).

    Returns:
        The groups, body first.
    """
    def optimizer(lr: float, name: str) -> GroupSGD:
        sched = schedules.build_schedule(schedule, lr, total_steps, num_decays, decay_rate, power,
                                         warmup_steps, warmup_factor)
        return make_sgd(sched, momentum, nesterov, weight_decay, name=name)

    if not head_layers or head_lr_multiplier == 1.0:
        return [VariableGroup("all", list(model.trainable_variables), optimizer(base_lr, "sgd_all"))]
    if not head_lr_multiplier > 0:
        raise ValueError(f"head_lr_multiplier must be positive, got {head_lr_multiplier}")
    body, head = split_variables(model, head_layers)
    groups = [VariableGroup("head", head, optimizer(base_lr * head_lr_multiplier, "sgd_head"),
                            float(head_lr_multiplier))]
    if body:
        groups.insert(0, VariableGroup("body", body, optimizer(base_lr, "sgd_body"), 1.0))
    return groups
