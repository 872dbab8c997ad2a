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
    # The rates are the float32 roundings of 0.1 and 0.01.
    assert float(head.optimizer.learning_rate) == pytest.approx(0.1, rel=U32)
    assert float(body.optimizer.learning_rate) == pytest.approx(0.01, rel=U32)


# float32 unit roundoff: round to nearest gives |fl(x) - x| <= U32 |x| for normal results.
U32 = 2.0 ** -24
# TensorFlow runs CPU kernels with subnormals flushed to zero: a result below this is at most this far off.
TINY32 = 2.0 ** -126


def _gamma(n):
    """Higham's gamma_n = n u / (1 - n u): the relative error of n float32 roundings in a row."""
    return n * U32 / (1 - n * U32)


def test_parsing_step_applies_ten_times_head_lr_and_one_global_clip():
    """Plain SGD: delta = -lr_group * clip_factor * grad, with one clip factor for both groups.

    The step is checked against its own gradients, kept from inside the step: two forward/backward
    passes of the same model (eager here, traced in the step) differ by ~1e-3 relative (oneDNN picks
    other kernels and orders), more than any bound on the step's own arithmetic, which is what the
    tolerances below come from.
    """
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    # MobileNetV2 and a narrow ASPP: small kernels keep the summation bound on the gradient norm
    # below the head's share of it (checked below), so the norm check can see a group left out.
    model = build_parsing_model(input_shape=(None, None, 3), aspp_rates=(1, 2), backbone="mobilenet_v2",
                                aspp_filters=8)
    lr, multiplier = 0.01, 10.0
    groups = _plain_sgd_groups(model, optimizers.PARSING_HEAD_LAYERS, lr, multiplier)
    trainer = step.Trainer(strategy, model, groups, step.parsing_loss)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 80, 80, 3)).astype("uint8")
    masks = rng.integers(0, 20, (2, 80, 80, 1)).astype("uint8")
    masks[:, :8] = 255  # some ignored pixels

    # A separate eager pass only picks a clipping norm well below the step's gradient norm (read when
    # the step is traced): the clip factor is then ~0.5 for both groups.
    _, eager_grads = trainer._forward_backward_fn(tf.constant(images), tf.constant(masks), tf.constant(1.0))
    trainer.clip_norm = 0.5 * float(tf.linalg.global_norm(eager_grads))
    kept = [tf.Variable(tf.zeros_like(v), trainable=False) for v in trainer.variables]

    def forward_backward_keeping_gradients(images, labels, scale):
        sums, grads = trainer._forward_backward_fn(images, labels, scale)
        for keep, grad in zip(kept, grads):
            keep.assign(grad)
        return sums, grads

    trainer._forward_backward = forward_backward_keeping_gradients
    before = [v.numpy() for v in trainer.variables]
    outputs = trainer.train_step(_iterator(strategy, lambda ctx: tf.data.Dataset.from_tensors((images, masks))))
    after = [v.numpy() for v in trainer.variables]
    # One replica: the all-reduce is the identity and the weight count / global count is exactly 1,
    # so the step clips and applies exactly these float32 values.
    grads = [k.numpy() for k in kept]
    norm = float(outputs["grad_norm"])

    # The reported norm against float64 from the same float32 gradients. tf.linalg.global_norm sums
    # each tensor's m_t squares (one rounding per square, m_t - 1 additions, in an order the kernel
    # picks), then the T tensor sums (T - 1 additions); x0.5 and x2 are exact. Positive terms summed
    # in any order: each term of tensor t carries at most m_t + T - 1 roundings, so
    # |fl(S) - S| <= sum_t gamma_{m_t + T - 1} S_t. The square root halves the relative error and adds
    # one rounding. (The float64 reference errs by ~n 2^-53, negligible.)
    squares = np.array([np.sum(np.square(g, dtype=np.float64)) for g in grads])
    sizes = np.array([g.size for g in grads])
    exact = float(np.sqrt(squares.sum()))
    rel = 0.5 * float(np.sum(_gamma(sizes + len(grads) - 1) * squares)) / squares.sum() + U32
    assert abs(norm - exact) <= rel * exact, (norm, exact, rel)
    # The bound is tight enough to notice a norm over one group only.
    split = len(groups[0].variables)
    for part in (squares[:split].sum(), squares[split:].sum()):
        assert 1 - np.sqrt(1 - part / squares.sum()) > rel

    # Each update against float64 from the same float32 values. clip_by_global_norm rounds the clip
    # norm to float32, 1 / N and their product; then g * c, the learning rate to float32 and its
    # product, and the subtraction from the weight: six roundings of the product lr c g and one of
    # |w'|. So |(w - w') - lr c g| <= gamma_6 |lr c g| + u |w'| / (1 - u), with c = clip / N from the
    # reported N; gamma_7 also covers the float64 evaluation (~2^-53 per operation), and TINY32 per
    # rounding the flushed subnormals.
    factor = trainer.clip_norm / norm
    assert 0.4 < factor < 0.6  # clipping was active
    start = 0
    for group, rate in zip(groups, (lr, lr * multiplier)):
        resolution = []
        for i in range(start, start + len(group.variables)):
            expected = rate * factor * grads[i].astype(np.float64)
            delta = before[i].astype(np.float64) - after[i]
            bound = _gamma(7) * np.abs(expected) + U32 / (1 - U32) * np.abs(after[i]) + 7 * TINY32
            worst = np.max(np.abs(delta - expected) - bound)
            assert worst <= 0, f"{group.name} {trainer.variables[i].path}: off by {worst} beyond the bound"
            resolution.append((np.abs(expected) / bound).ravel())
        # Most updates are over 1000 times their bound: a rate or clip factor off by 0.1% (let
        # alone a missing 10x) would break the bound on most of the group's weights.
        assert np.median(np.concatenate(resolution)) > 1e3, group.name
        start += len(group.variables)


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


@pytest.fixture
def op_determinism():
    """TensorFlow's deterministic kernels for one test (the same graph on the same inputs gives the same bits)."""
    from tensorflow.python.framework import config as tf_config  # disable_op_determinism has no public name

    tf.config.experimental.enable_op_determinism()
    yield
    tf_config.disable_op_determinism()


def test_resume_continues_at_checkpointed_step(tmp_path, op_determinism):
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
    # body: 0.1 rounds to float32 once, x 0.5 is exact; head: 0.1 x 10 = 1.0 and x 0.5 are exact.
    assert trainer.learning_rates() == pytest.approx({"body": 0.05, "head": 0.5}, rel=U32)
    for group in trainer.groups:
        assert int(group.optimizer.iterations.numpy()) == 3
        for saved, now in zip(slots[group.name], group.optimizer.variables):
            np.testing.assert_array_equal(saved, now.numpy())
    momenta = [v for v in trainer.groups[0].optimizer.variables if "momentum" in v.path]
    assert momenta and any(np.abs(m.numpy()).max() > 0 for m in momenta)

    # Finishing the run from the checkpoint gives what an uninterrupted run gives, bit for bit: the
    # checkpoint holds float32 values exactly and both runs trace the same step on the same batches,
    # so with deterministic kernels no rounding differs (no tolerance to choose).
    resumed, result = _resume_run(tmp_path / "resumed", total, stop_after=None, seed_offset=7)
    assert (result.start_step, result.final_step) == (3, 6)
    straight, _ = _resume_run(tmp_path / "straight", total, stop_after=None)
    for a, b in zip(resumed.model.weights, straight.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
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
