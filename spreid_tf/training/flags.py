"""Command-line flags of the training binaries, grouped, and their conversion to configs.

Only the binaries call these: `define_train_flags()` / `define_train_parsing_flags()`
at import of the binary, and `*_config_from_flags(flag_values)` in its `main()`,
which passes the absl FlagValues object explicitly (library code never reads the
global FLAGS).

Every default lives in the config dataclasses (`training.config`); a flag reads
its default from the field of the same name and states none of its own. The two
binaries differ only where their configs do: ParsingConfig's `optimization`
default (the paper's LIP schedule) against ReidConfig's (the paper's phase 1).
tests/training/test_configs.py parses each binary's flags with no overrides and
compares the result with the dataclass defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from absl import flags

from spreid_tf.models import BACKBONES, VARIANTS
from spreid_tf.models.parsing import PARSING_BACKBONES
from spreid_tf.training.config import REID_MODELS, OptimizationConfig, ParsingConfig, ReidConfig, RuntimeConfig
from spreid_tf.training.schedules import SCHEDULES
from spreid_tf.training.strategy import STRATEGIES


def _size(values: list[str] | None, name: str) -> tuple[int, int] | None:
    if not values:
        return None
    try:
        height, width = (int(v) for v in values)
    except ValueError:
        raise flags.ValidationError(
            f"--{name} must be HEIGHT,WIDTH (two integers), got {','.join(values)}") from None
    return height, width


def _is_size(values: list[str] | None) -> bool:
    return values is None or len(values) == 2 and all(v.strip().isdigit() and int(v) > 0 for v in values)


def _register_size_validator(name: str, flag_values: flags.FlagValues) -> None:
    flags.register_validator(name, _is_size, message=f"--{name} must be HEIGHT,WIDTH (two positive integers)",
                             flag_values=flag_values)


def _weights(value: str | None) -> str | None:
    return None if value is None or value.lower() in ("", "none") else value


def _default(config_class: type, name: str) -> Any:
    """The default of field `name` of the dataclass `config_class`."""
    for field in dataclasses.fields(config_class):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
            raise ValueError(f"{config_class.__name__}.{name} has no default")
    raise ValueError(f"{config_class.__name__} has no field {name!r}")


def _list_default(config_class: type, name: str) -> list[str] | None:
    """A tuple default as the strings of a DEFINE_list flag (None stays None)."""
    value = _default(config_class, name)
    return None if value is None else [str(v) for v in value]


def _kwargs_from_flags(config_class: type, values: flags.FlagValues, **converted: Any) -> dict:
    """Keyword arguments of `config_class`: `converted` as given, every other field from its flag.

    A field without a flag of the same name fails here (absl's unknown-flag error),
    so a new config field cannot be silently left at its default by the binaries.
    """
    return {f.name: converted[f.name] if f.name in converted else getattr(values, f.name)
            for f in dataclasses.fields(config_class)}


def define_model_dir_flag(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    flags.DEFINE_string("model_dir", None, "Run folder: checkpoints, TensorBoard events, config.json, the "
                        "trained model. A run restarts from the latest checkpoint found here.",
                        required=True, flag_values=flag_values)


def define_optimization_flags(defaults: OptimizationConfig = OptimizationConfig(),
                              flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """SGD, learning-rate schedule and clipping flags.

    Args:
        defaults: the binary's config's `optimization` default (ReidConfig's: the paper's
            phase 1; ParsingConfig's: its LIP schedule); every flag's default comes from it.
        flag_values: where to define the flags.
    """
    kw = {"flag_values": flag_values}
    d = defaults
    flags.DEFINE_integer("batch_size", d.batch_size, "Global batch size (split over the replicas).", **kw)
    flags.DEFINE_integer("total_steps", d.total_steps, "Training iterations.", **kw)
    flags.DEFINE_float("learning_rate", d.learning_rate, "Base learning rate.", **kw)
    flags.DEFINE_enum("schedule", d.schedule, SCHEDULES,
                      "exponential: lr * decay_rate^floor(step*num_decays/total_steps); "
                      "poly: lr * (1 - floor(step*num_decays/total_steps)/num_decays)^poly_power.", **kw)
    flags.DEFINE_integer("num_decays", d.num_decays, "Learning-rate steps over the run.", **kw)
    flags.DEFINE_float("decay_rate", d.decay_rate, "Decay factor per step of the exponential schedule.", **kw)
    flags.DEFINE_float("poly_power", d.poly_power, "Exponent of the poly schedule.", **kw)
    flags.DEFINE_float("momentum", d.momentum, "SGD momentum.", **kw)
    flags.DEFINE_boolean("nesterov", d.nesterov, "Nesterov momentum.", **kw)
    flags.DEFINE_float("weight_decay", d.weight_decay, "Decoupled weight decay of keras SGD "
                       "(w -= lr * wd * w); 0 = off.", **kw)
    flags.DEFINE_float("clip_norm", d.clip_norm, "Clip the gradients by their global norm over all variables; "
                       "0 = off.", **kw)
    flags.DEFINE_float("head_lr_multiplier", d.head_lr_multiplier, "Learning rate of the head (parsing: ASPP + "
                       "classifier; re-id: the classifier) over the base rate.", **kw)
    flags.DEFINE_integer("warmup_steps", d.warmup_steps, "Linear learning-rate warm-up over this many steps, from "
                         "warmup_factor x the rate (0 = none; use one when training from random weights).", **kw)
    flags.DEFINE_float("warmup_factor", d.warmup_factor, "Starting fraction of the warm-up.", **kw)
    flags.DEFINE_integer("precise_bn_batches", d.precise_bn_batches, "After training, recompute the batch-norm "
                         "moving averages from this many training batches (0 = keep the moving averages).", **kw)


def define_runtime_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Strategy, precision, checkpoint and logging flags (defaults: RuntimeConfig's)."""
    kw = {"flag_values": flag_values}

    def d(name):
        return _default(RuntimeConfig, name)

    flags.DEFINE_enum("strategy", d("strategy"), STRATEGIES,
                      "default: one device; mirrored: all local GPUs; multi_worker: from TF_CONFIG.", **kw)
    flags.DEFINE_boolean("mixed_precision", d("mixed_precision"), "mixed_float16 compute with a dynamic loss "
                         "scale.", **kw)
    flags.DEFINE_boolean("jit_compile", d("jit_compile"), "XLA-compile the forward/backward pass "
                         "(with several replicas only together with --nosync_batchnorm).", **kw)
    flags.DEFINE_boolean("sync_batchnorm", d("sync_batchnorm"), "Batch-norm statistics over all replicas.", **kw)
    flags.DEFINE_integer("checkpoint_every", d("checkpoint_every"), "Steps between checkpoints.", **kw)
    flags.DEFINE_integer("keep_checkpoints", d("keep_checkpoints"), "Checkpoints to keep.", **kw)
    flags.DEFINE_integer("log_every", d("log_every"), "Steps between log lines and TensorBoard points.", **kw)
    flags.DEFINE_integer("seed", d("seed"), "Random seed (weights and input order); default: random.", **kw)
    flags.DEFINE_integer("stop_after", d("stop_after"), "Stop at this step (the run can be resumed later).", **kw)


def define_reid_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Data and model flags of the re-id binary (defaults: ReidConfig's)."""
    kw = {"flag_values": flag_values}

    def d(name):
        return _default(ReidConfig, name)

    flags.DEFINE_string("train_data", None, "Converted dataset folder (with manifest.json), merged "
                        "label_map.json (or its folder), or a TensorFlow Datasets build of spreid_tf.data.tfds: "
                        "tfds:NAME[/CONFIG][,data_dir=DIR] (e.g. tfds:spreid_market1501; needs the extra tfds). "
                        "The identity count is read from it.", required=True, **kw)
    flags.DEFINE_enum("model", d("model"), REID_MODELS, "baseline (global pooling) or spreid.", **kw)
    flags.DEFINE_enum("backbone", d("backbone"), BACKBONES, "Re-id backbone.", **kw)
    flags.DEFINE_enum("variant", d("variant"), VARIANTS, "SPReID variant: with or without the foreground "
                      "vector.", **kw)
    flags.DEFINE_boolean("weight_sharing", d("weight_sharing"), "SPReID: one backbone for both branches (else "
                         "exclusive).", **kw)
    flags.DEFINE_list("input_size", _list_default(ReidConfig, "input_size"), "HEIGHT,WIDTH of the input "
                      "(SPReID: the parsing resolution).", **kw)
    flags.DEFINE_list("reid_input_size", _list_default(ReidConfig, "reid_input_size"), "SPReID: HEIGHT,WIDTH of "
                      "the re-id branch (default: input_size).", **kw)
    _register_size_validator("input_size", flag_values)
    _register_size_validator("reid_input_size", flag_values)
    flags.DEFINE_string("parsing_model", d("parsing_model"), "SPReID: the parsing.keras written by "
                        "spreid_tf.train_parsing.", **kw)
    flags.DEFINE_string("weights", d("weights"), "Backbone initialisation: imagenet, none, or a weights file.",
                        **kw)
    flags.DEFINE_string("init_from", d("init_from"), "Phase 2: the phase-1 model_dir (or its .keras file); every "
                        "weight but the classifier's is copied.", **kw)
    flags.DEFINE_boolean("evaluate", d("evaluate"), "Evaluate on the query/gallery splits at the end (if "
                         "present).", **kw)
    flags.DEFINE_integer("eval_batch_size", d("eval_batch_size"), "Evaluation batch size.", **kw)
    flags.DEFINE_integer("shuffle_buffer", d("shuffle_buffer"), "Records in the shuffle buffer.", **kw)


def define_parsing_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Data and model flags of the parsing binary (defaults: ParsingConfig's)."""
    kw = {"flag_values": flag_values}

    def d(name):
        return _default(ParsingConfig, name)

    flags.DEFINE_string("train_data", None, "Converted LIP folder (with manifest.json), or tfds:spreid_lip"
                        "[,data_dir=DIR] (a TensorFlow Datasets build; needs the extra tfds).", required=True, **kw)
    flags.DEFINE_list("crop_size", _list_default(ParsingConfig, "crop_size"), "HEIGHT,WIDTH of the training "
                      "crops.", **kw)
    _register_size_validator("crop_size", flag_values)
    flags.DEFINE_float("min_scale", d("min_scale"), "Smallest random scale of the training images.", **kw)
    flags.DEFINE_float("max_scale", d("max_scale"), "Largest random scale of the training images.", **kw)
    flags.DEFINE_string("weights", d("weights"), "Backbone initialisation: imagenet, none, or a weights file.",
                        **kw)
    flags.DEFINE_list("aspp_rates", _list_default(ParsingConfig, "aspp_rates"), "Dilation rates of the ASPP 3x3 "
                      "branches.", **kw)
    flags.DEFINE_enum("backbone", d("backbone"), PARSING_BACKBONES, "Parsing backbone: inception_v3 (the "
                      "paper's InceptionV3*) or mobilenet_v2 (DeepLab's atrous MobileNetV2; ~10x less work).", **kw)
    flags.DEFINE_boolean("decoder", d("decoder"), "DeepLabv3+'s decoder: logits at stride 4, refined with the "
                         "backbone's stride-4 features (small parts on small images).", **kw)
    flags.DEFINE_enum("output_stride", str(d("output_stride")), ["8", "16"], "Output stride of the dilated "
                      "backbone (16: the paper; 8: finer logits for small crops).", **kw)
    flags.DEFINE_integer("aspp_filters", d("aspp_filters"), "Width of an ASPP atrous branch (the authors': 256; "
                         "the pooling and 1x1 branches are 2x, the projection 4x).", **kw)
    flags.DEFINE_boolean("evaluate", d("evaluate"), "Mean IoU on LIP val at the end (if converted).", **kw)
    flags.DEFINE_integer("eval_batch_size", d("eval_batch_size"), "Evaluation batch size.", **kw)
    flags.DEFINE_integer("shuffle_buffer", d("shuffle_buffer"), "Records in the shuffle buffer.", **kw)


def define_train_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Every flag of spreid_tf.train: --model_dir, then ReidConfig's fields and their defaults."""
    define_model_dir_flag(flag_values)
    define_reid_flags(flag_values)
    define_optimization_flags(_default(ReidConfig, "optimization"), flag_values)
    define_runtime_flags(flag_values)


def define_train_parsing_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Every flag of spreid_tf.train_parsing: --model_dir, then ParsingConfig's fields and their defaults."""
    define_model_dir_flag(flag_values)
    define_parsing_flags(flag_values)
    define_optimization_flags(_default(ParsingConfig, "optimization"), flag_values)
    define_runtime_flags(flag_values)


def optimization_config_from_flags(values: flags.FlagValues) -> OptimizationConfig:
    return OptimizationConfig(**_kwargs_from_flags(OptimizationConfig, values))


def runtime_config_from_flags(values: flags.FlagValues) -> RuntimeConfig:
    return RuntimeConfig(**_kwargs_from_flags(RuntimeConfig, values))


def reid_config_from_flags(values: flags.FlagValues) -> ReidConfig:
    """The ReidConfig of the parsed flags `values`."""
    return ReidConfig(**_kwargs_from_flags(
        ReidConfig, values, input_size=_size(values.input_size, "input_size"),
        reid_input_size=_size(values.reid_input_size, "reid_input_size"), weights=_weights(values.weights),
        optimization=optimization_config_from_flags(values), runtime=runtime_config_from_flags(values)))


def parsing_config_from_flags(values: flags.FlagValues) -> ParsingConfig:
    """The ParsingConfig of the parsed flags `values`."""
    return ParsingConfig(**_kwargs_from_flags(
        ParsingConfig, values, crop_size=_size(values.crop_size, "crop_size"), weights=_weights(values.weights),
        aspp_rates=tuple(int(r) for r in values.aspp_rates), output_stride=int(values.output_stride),
        optimization=optimization_config_from_flags(values), runtime=runtime_config_from_flags(values)))
