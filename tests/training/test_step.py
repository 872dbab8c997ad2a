"""The train step: per-group learning rates, global clipping, resume, mixed precision, XLA."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from spreid_tf.models import build_parsing_model
from spreid_tf.training import loop, optimizers, schedules, step
from training_helpers import random_batches, tiny_model


def _dataset_fn(images, labels, batch_size):
    def dataset_fn(ctx, start_step=0):
        # Deterministic: a resumed run continues with the batches an uninterrupted one would see.
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).repeat()
        per_replica = ctx.get_per_replica_batch_size(batch_size)
        return ds.skip(start_step * batch_size).batch(per_replica, drop_remainder=True)
    return dataset_fn


def _iterator(strategy, dataset_fn):
    return iter(strategy.distribute_datasets_from_function(dataset_fn))


def _plain_sgd_groups(model, head_layers, lr, multiplier):
    body, head = optimizers.split_variables(model, head_layers)

    def sgd(rate, name):
        return optimizers.make_sgd(schedules.build_schedule("constant", rate, 1), momentum=0.0, nesterov=False,
                                   weight_decay=None, name=name)
    return [optimizers.VariableGroup("body", body, sgd(lr, "body")),
            optimizers.VariableGroup("head", head, sgd(lr * multiplier, "head"), multiplier)]


def test_parsing_groups_split_backbone_and_head():
    model = build_parsing_model(input_shape=(None, None, 3), aspp_rates=(1, 2))
    groups = optimizers.make_variable_groups(model, base_lr=0.01, total_steps=30_000,
                                             head_layers=optimizers.PARSING_HEAD_LAYERS, head_lr_multiplier=10.0)
    assert [g.name for g in groups] == ["body", "head"]
    body, head = groups
    backbone = model.get_layer("inception_v3_dilated").trainable_variables
    assert {id(v) for v in body.variables} == {id(v) for v in backbone}
    expected_head = model.get_layer("aspp").trainable_variables + model.get_layer("classifier").trainable_variables
    assert {id(v) for v in head.variables} == {id(v) for v in expected_head}
    assert len(body.variables) + len(head.variables) == len(model.trainable_variables)
    assert float(head.optimizer.learning_rate) == pytest.approx(0.1)
    assert float(body.optimizer.learning_rate) == pytest.approx(0.01)


@pytest.mark.slow
def test_parsing_step_applies_ten_times_head_lr_and_one_global_clip():
    """Plain SGD: delta = -lr_group * clip_factor * grad, with one clip factor for both groups."""
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    model = build_parsing_model(input_shape=(None, None, 3), aspp_rates=(1, 2))
    lr = 0.01
    groups = _plain_sgd_groups(model, optimizers.PARSING_HEAD_LAYERS, lr, 10.0)
    trainer = step.Trainer(strategy, model, groups, step.parsing_loss)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 80, 80, 3)).astype("uint8")
    masks = rng.integers(0, 20, (2, 80, 80, 1)).astype("uint8")
    masks[:, :8] = 255  # some ignored pixels

    # Every BN layer runs in training mode: its batch statistics make the gradients reproducible here.
    _, grads = trainer._forward_backward_fn(tf.constant(images), tf.constant(masks), tf.constant(1.0))
    grads = [g.numpy() for g in grads]
    norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
    # Clip to half the global norm (read when the step is traced, below): factor 0.5 for both groups.
    trainer.clip_norm = norm / 2
    factor = 0.5
    before = [v.numpy() for v in trainer.variables]
    outputs = trainer.train_step(_iterator(strategy, lambda ctx: tf.data.Dataset.from_tensors((images, masks))))
    assert float(outputs["grad_norm"]) == pytest.approx(norm, rel=1e-3)
    after = [v.numpy() for v in trainer.variables]

    ratios = {"body": [], "head": []}
    start = 0
    for group in groups:
        for i in range(start, start + len(group.variables)):
            g = grads[i]
            big = np.abs(g) > 1e-3 * np.abs(g).max()
            if big.sum() == 0:
                continue
            ratios[group.name].append(np.median((before[i] - after[i])[big] / g[big]))
        start += len(group.variables)
    body, head = np.median(ratios["body"]), np.median(ratios["head"])
    assert body == pytest.approx(lr * factor, rel=2e-2)
    assert head == pytest.approx(10 * lr * factor, rel=2e-2)
    assert head / body == pytest.approx(10.0, rel=2e-2)


def _resume_run(model_dir, total, stop_after, seed_offset=0):
    strategy = tf.distribute.get_strategy()
    model = tiny_model(seed=0 + seed_offset)
    groups = optimizers.make_variable_groups(model, base_lr=0.1, total_steps=total, num_decays=3,
                                             decay_rate=0.5, momentum=0.9, weight_decay=5e-4,
                                             head_layers=optimizers.REID_CLASSIFIER_LAYERS, head_lr_multiplier=10.0)
    trainer = step.Trainer(strategy, model, groups, step.reid_loss, clip_norm=2.0)
    images, labels = random_batches()
    result = loop.train_loop(trainer, _dataset_fn(images, labels, 4), total_steps=total, model_dir=str(model_dir),
                             global_batch_size=4, checkpoint_every=3, log_every=2, stop_after=stop_after)
    return trainer, result


def test_resume_continues_at_checkpointed_step(tmp_path):
    total = 6
    first, result = _resume_run(tmp_path / "resumed", total, stop_after=3)
    assert (result.start_step, result.final_step) == (0, 3)
    slots = {g.name: [v.numpy() for v in g.optimizer.variables] for g in first.groups}

    # A new process would start from fresh (differently initialised) objects.
    strategy = tf.distribute.get_strategy()
    model = tiny_model(seed=123)
    groups = optimizers.make_variable_groups(model, base_lr=0.1, total_steps=total, num_decays=3,
                                             decay_rate=0.5, momentum=0.9, weight_decay=5e-4,
                                             head_layers=optimizers.REID_CLASSIFIER_LAYERS, head_lr_multiplier=10.0)
    trainer = step.Trainer(strategy, model, groups, step.reid_loss, clip_norm=2.0)
    restored = loop.restore_latest(trainer.checkpoint(), str(tmp_path / "resumed"))
    assert restored.endswith("ckpt-3")
    assert int(trainer.step.numpy()) == 3
    # The schedule position: floor(3 * 3 / 6) = 1 decay of 0.5.
    assert trainer.learning_rates() == pytest.approx({"body": 0.05, "head": 0.5})
    for group in trainer.groups:
        assert int(group.optimizer.iterations.numpy()) == 3
        for saved, now in zip(slots[group.name], group.optimizer.variables):
            np.testing.assert_array_equal(saved, now.numpy())
    momenta = [v for v in trainer.groups[0].optimizer.variables if "momentum" in v.path]
    assert momenta and any(np.abs(m.numpy()).max() > 0 for m in momenta)

    # Finishing the run from the checkpoint gives what an uninterrupted run gives.
    resumed, result = _resume_run(tmp_path / "resumed", total, stop_after=None, seed_offset=7)
    assert (result.start_step, result.final_step) == (3, 6)
    straight, _ = _resume_run(tmp_path / "straight", total, stop_after=None)
    for a, b in zip(resumed.model.weights, straight.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    assert (tmp_path / "resumed" / "train").is_dir()


def test_mixed_precision_skips_non_finite_steps():
    keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = tf.distribute.get_strategy()
    model = tiny_model()
    assert model.get_layer("conv").compute_dtype == "float16"
    groups = optimizers.make_variable_groups(model, base_lr=0.1, total_steps=10)
    poison = tf.Variable(0.0)

    def loss_fn(outputs, labels):
        sums = step.reid_loss(outputs, labels)
        # Poisoned: the scaled loss overflows, every gradient is inf/nan.
        return sums._replace(loss_sum=sums.loss_sum * (1.0 + poison * 1e38))

    trainer = step.Trainer(strategy, model, groups, loss_fn, mixed_precision=True)
    images, labels = random_batches()
    iterator = _iterator(strategy, _dataset_fn(images, labels, 4))
    scale = float(trainer.loss_scale.scale.numpy())
    assert scale == 2.0 ** 15
    outputs = trainer.train_step(iterator)
    assert float(outputs["skipped"]) == 0.0
    assert int(groups[0].optimizer.iterations.numpy()) == 1
    before = [v.numpy() for v in model.trainable_variables]
    poison.assign(1.0)
    outputs = trainer.train_step(iterator)
    assert float(outputs["skipped"]) == 1.0
    assert float(trainer.loss_scale.scale.numpy()) == scale / 2
    assert int(groups[0].optimizer.iterations.numpy()) == 1  # no update, no momentum, no decay
    assert int(trainer.step.numpy()) == 2
    for a, v in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(a, v.numpy())
    poison.assign(0.0)
    trainer.train_step(iterator)
    assert int(groups[0].optimizer.iterations.numpy()) == 2


def test_jit_compile_matches_graph_mode():
    strategy = tf.distribute.get_strategy()
    images, labels = random_batches()
    results = []
    for jit in (False, True):
        model = tiny_model(seed=3)
        groups = optimizers.make_variable_groups(model, base_lr=0.05, total_steps=10)
        trainer = step.Trainer(strategy, model, groups, step.reid_loss, jit_compile=jit)
        iterator = _iterator(strategy, _dataset_fn(images, labels, 4))
        losses = [float(o["loss_sum"] / o["count"]) for o in (trainer.train_step(iterator) for _ in range(2))]
        results.append((losses, [v.numpy() for v in model.trainable_variables]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_groups_must_cover_every_variable_once():
    strategy = tf.distribute.get_strategy()
    model = tiny_model()
    body, head = optimizers.split_variables(model, ("classifier",))
    sgd = optimizers.make_sgd(0.1)
    with pytest.raises(ValueError, match="in no group"):
        step.Trainer(strategy, model, [optimizers.VariableGroup("body", body, sgd)], step.reid_loss)
    with pytest.raises(ValueError, match="is in groups"):
        step.Trainer(strategy, model, [optimizers.VariableGroup("a", body + head, sgd),
                                       optimizers.VariableGroup("b", head, optimizers.make_sgd(0.1))],
                     step.reid_loss)
    with pytest.raises(ValueError, match="no layer"):
        optimizers.split_variables(model, ("aspp",))


def test_parsing_loss_ignores_label_255():
    logits = tf.random.stateless_normal((1, 2, 2, 20), seed=(1, 2))
    masks = np.full((1, 4, 4, 1), 255, np.uint8)
    masks[0, 0, 0, 0] = 3
    sums = step.parsing_loss({"logits": logits}, tf.constant(masks))
    assert float(sums.count) == 1.0
    upsampled = tf.image.resize(logits, (4, 4), method="bilinear")[0, 0, 0]
    expected = -tf.nn.log_softmax(upsampled)[3]
    assert float(sums.loss_sum) == pytest.approx(float(expected), rel=1e-5)
