"""Frozen configurations of the training runs, and their JSON form (model_dir/config.json).

The binaries build these from flags (`training.flags`); the library functions
(`reid.train_and_evaluate`, `parsing.train_parsing`) take them as plain arguments.
The number of identities is never configured: it comes from the data (the merged
`label_map.json` or the converted dataset's manifest).

These dataclasses hold every default of the training runs: the binaries' flags read
theirs from here (`training.flags`), and the shuffle buffers come from the input
pipelines' own defaults.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow as tf

from spreid_tf.data import pipelines
from spreid_tf.evaluation import parsing as parsing_evaluation
from spreid_tf.evaluation import reid as reid_evaluation
from spreid_tf.models.parsing import PARSING_BACKBONES
from spreid_tf.run_folder import CONFIG_FILENAME
from spreid_tf.training.schedules import SCHEDULES
from spreid_tf.training.strategy import STRATEGIES

REID_MODELS = ("baseline", "spreid")


@dataclasses.dataclass(frozen=True)
class OptimizationConfig:
    """SGD, schedule and clipping (defaults: the paper's phase 1).

    Attributes:
        batch_size: global batch size (split over the replicas).
        total_steps: iterations of the whole run.
        learning_rate: base learning rate (step 0).
        schedule: "exponential", "poly" or "constant" (see training.schedules).
        num_decays: equal intervals of the step-wise schedule.
        decay_rate: factor per interval ("exponential").
        poly_power: exponent ("poly").
        momentum, nesterov: SGD momentum.
        weight_decay: keras SGD decoupled decay (w -= lr * weight_decay * w); 0 = off.
        clip_norm: global gradient-norm clipping over all groups; 0 = off.
        head_lr_multiplier: learning rate of the head layers over the base rate
            (parsing: ASPP + classifier at 10x; re-id: the classifier, default 1).
        warmup_steps: linear warm-up from warmup_factor x the rate (0 = none, the
            paper's runs from ImageNet weights; runs from random weights need one).
        warmup_factor: the warm-up's starting fraction.
        precise_bn_batches: after training, the batch-norm moving averages are
            recomputed from this many training batches (training.precise_bn); 0 = off.
    """

    batch_size: int = 15
    total_steps: int = 200_000
    learning_rate: float = 0.01
    schedule: str = "exponential"
    num_decays: int = 10
    decay_rate: float = 0.9
    poly_power: float = 0.9
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    clip_norm: float = 2.0
    head_lr_multiplier: float = 1.0
    warmup_steps: int = 0
    warmup_factor: float = 0.1
    precise_bn_batches: int = 100

    def __post_init__(self):
        if self.warmup_steps < 0 or not 0 <= self.warmup_factor <= 1 or self.precise_bn_batches < 0:
            raise ValueError(f"need warmup_steps >= 0, 0 <= warmup_factor <= 1, precise_bn_batches >= 0: {self}")
        if self.batch_size < 1 or self.total_steps < 1 or self.num_decays < 1:
            raise ValueError(f"batch_size, total_steps and num_decays must be positive: {self}")
        if self.learning_rate <= 0 or self.head_lr_multiplier <= 0:
            raise ValueError(f"learning_rate and head_lr_multiplier must be positive: {self}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {SCHEDULES}")
        if self.weight_decay < 0 or self.clip_norm < 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"need weight_decay >= 0, clip_norm >= 0, 0 <= momentum < 1: {self}")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Devices, precision, checkpoints and logging.

    Attributes:
        strategy: "default", "mirrored" or "multi_worker" (training.strategy).
        mixed_precision: keras "mixed_float16" policy with a dynamic loss scale.
        jit_compile: XLA-compile the forward and backward pass.
        sync_batchnorm: batch statistics over all replicas (matters with > 1).
        checkpoint_every: steps between checkpoints.
        keep_checkpoints: checkpoints kept.
        log_every: steps between log lines / TensorBoard points.
        seed: seeds weights and input order (None: random).
        stop_after: stop once this step is reached (resumable); None: run to the end.
    """

    strategy: str = "default"
    mixed_precision: bool = False
    jit_compile: bool = False
    sync_batchnorm: bool = True
    checkpoint_every: int = 1000
    keep_checkpoints: int = 5
    log_every: int = 100
    seed: int | None = None
    stop_after: int | None = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1 or self.log_every < 1:
            raise ValueError(f"checkpoint_every, keep_checkpoints and log_every must be positive: {self}")


@dataclasses.dataclass(frozen=True)
class ReidConfig:
    """A re-id training run (baseline or SPReID; phase 1 or phase 2).

    Attributes:
        train_data: a converted dataset folder (with manifest.json) or a merged
            label map (label_map.json, or the folder holding it).
        model: "baseline" or "spreid".
        backbone: "inception_v3", "resnet50" or "resnet152".
        variant: SPReID "w_fg" or "wo_fg".
        weight_sharing: SPReID shared (True) or exclusive backbones.
        input_size: (height, width) of the input (SPReID: the parsing resolution).
        reid_input_size: SPReID's re-id branch input; None = input_size.
        parsing_model: SPReID's trained parsing model (.keras file from train_parsing).
        weights: backbone initialisation: "imagenet", a local file, or None.
        init_from: phase 2: a phase-1 model_dir (or its model.keras) whose weights,
            all but the classifier, initialise this model.
        evaluate: evaluate on the query/gallery splits of train_data at the end.
        eval_batch_size: batch size of the evaluation.
        shuffle_buffer: records in the training pipeline's shuffle buffer.
        optimization: the paper's phase 1 (OptimizationConfig's defaults).
    """

    train_data: str
    model: str = "baseline"
    backbone: str = "inception_v3"
    variant: str = "w_fg"
    weight_sharing: bool = True
    input_size: tuple[int, int] = (492, 164)
    reid_input_size: tuple[int, int] | None = None
    parsing_model: str | None = None
    weights: str | None = "imagenet"
    init_from: str | None = None
    evaluate: bool = True
    eval_batch_size: int = reid_evaluation.DEFAULT_BATCH_SIZE
    shuffle_buffer: int = pipelines.DEFAULT_SHUFFLE_BUFFER
    optimization: OptimizationConfig = OptimizationConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    def __post_init__(self):
        if self.model not in REID_MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {REID_MODELS}")
        object.__setattr__(self, "input_size", tuple(self.input_size))
        if self.reid_input_size is not None:
            object.__setattr__(self, "reid_input_size", tuple(self.reid_input_size))


@dataclasses.dataclass(frozen=True)
class ParsingConfig:
    """A human-parsing training run on LIP.

    Attributes:
        train_data: the converted LIP folder (manifest.json, train/val shards).
        crop_size: (height, width) of the training crops.
        min_scale, max_scale: random scaling range of the training images.
        weights: backbone initialisation: "imagenet", a local file, or None.
        aspp_rates: dilation rates of the ASPP 3x3 branches (the paper: 3, 6, 9, 12 at
            512x512, i.e. a 32x32 feature grid; scale them down with the crop size).
        output_stride: 16 (the paper's InceptionV3*) or 8 (finer logits for small crops).
        aspp_filters: width of an ASPP atrous branch (the authors': 256; the other
            branches scale with it).
        backbone: "inception_v3" (the paper's InceptionV3*) or "mobilenet_v2" (atrous
            MobileNetV2, for CPU runs).
        decoder: DeepLabv3+'s decoder (logits at stride 4; small parts on small images).
        evaluate: mean IoU on the val split at the end.
        eval_batch_size: batch size of the evaluation.
        shuffle_buffer: records in the training pipeline's shuffle buffer.
        optimization: the paper's LIP schedule: 30K iterations, ASPP and classifier at
            10x the base rate (the only shared flags whose defaults differ between
            train_parsing and train).
    """

    train_data: str
    crop_size: tuple[int, int] = (512, 512)
    min_scale: float = 0.5
    max_scale: float = 2.0
    weights: str | None = "imagenet"
    aspp_rates: tuple[int, ...] = (3, 6, 9, 12)
    output_stride: int = 16
    aspp_filters: int = 256
    backbone: str = "inception_v3"
    decoder: bool = False
    evaluate: bool = True
    eval_batch_size: int = parsing_evaluation.DEFAULT_BATCH_SIZE
    shuffle_buffer: int = pipelines.DEFAULT_PARSING_SHUFFLE_BUFFER
    optimization: OptimizationConfig = OptimizationConfig(total_steps=30_000, head_lr_multiplier=10.0)
    runtime: RuntimeConfig = RuntimeConfig()

    def __post_init__(self):
        object.__setattr__(self, "crop_size", tuple(self.crop_size))
        object.__setattr__(self, "aspp_rates", tuple(int(r) for r in self.aspp_rates))
        if self.output_stride not in (8, 16) or self.aspp_filters < 1:
            raise ValueError(f"output_stride must be 8 or 16 and aspp_filters positive: {self}")
        if self.backbone not in PARSING_BACKBONES:
            raise ValueError(f"unknown parsing backbone {self.backbone!r}; expected one of {PARSING_BACKBONES}")


def to_dict(config: Any) -> dict:
    """The config as plain JSON types."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def write_config(config: Any, model_dir: str, **resolved: Any) -> str:
    """Writes `model_dir/config.json`: the config and facts resolved from the data.

    Args:
        config: a ReidConfig or ParsingConfig.
        model_dir: the run's folder (created if needed).
        **resolved: extra facts, e.g. num_identities from the data.

    Returns:
        The path written.
    """
    tf.io.gfile.makedirs(model_dir)
    document = {"type": type(config).__name__, "config": to_dict(config)}
    if resolved:
        document["resolved"] = json.loads(json.dumps(resolved))
    path = os.path.join(model_dir, CONFIG_FILENAME)
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        json.dump(document, f, indent=2)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return path


def _from_dict(cls, values: dict):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ValueError(f"{cls.__name__} has no field {key!r}")
        if key == "optimization":
            value = _from_dict(OptimizationConfig, value)
        elif key == "runtime":
            value = _from_dict(RuntimeConfig, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def read_config(path: str) -> ReidConfig | ParsingConfig:
    """Reads a config.json written by `write_config` (a folder gets CONFIG_FILENAME)."""
    if tf.io.gfile.isdir(path):
        path = os.path.join(path, CONFIG_FILENAME)
    with tf.io.gfile.GFile(path) as f:
        document = json.load(f)
    classes = {"ReidConfig": ReidConfig, "ParsingConfig": ParsingConfig}
    if document.get("type") not in classes:
        raise ValueError(f"{path}: unknown config type {document.get('type')!r}")
    return _from_dict(classes[document["type"]], document["config"])
