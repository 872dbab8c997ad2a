"""Flagfiles parse into valid configs; flag defaults are the configs'; configs round-trip through config.json."""

from __future__ import annotations

import dataclasses
import glob
import inspect
import os
import re

import pytest
from absl import flags

from spreid_tf import train, train_parsing
from spreid_tf.models import build_baseline_model
from spreid_tf.training import config as config_lib
from spreid_tf.training import flags as training_flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "configs")
FLAGFILES = sorted(glob.glob(os.path.join(CONFIGS, "*.flags")))
BASES = sorted(glob.glob(os.path.join(CONFIGS, "base", "*.flags")))


@pytest.fixture(autouse=True)
def _from_the_repository_root(monkeypatch):
    # The flagfiles include configs/base/*.flags by repository-relative paths, which absl
    # opens relative to the working directory: the documented commands run from the root.
    monkeypatch.chdir(REPO)


def _binary_flags(parsing: bool) -> flags.FlagValues:
    """The flags of train_parsing or train, defined by the binary's own define_flags."""
    values = flags.FlagValues()
    (train_parsing if parsing else train).define_flags(values)
    return values


def _parse(path: str, *extra: str):
    """Parses a flagfile with the flags of the binary it is for (train_parsing or train)."""
    parsing = "parsing" in os.path.basename(path)
    values = _binary_flags(parsing)
    values(["prog", f"--flagfile={path}", "--model_dir=/tmp/unused", *extra])
    if parsing:
        return training_flags.parsing_config_from_flags(values)
    return training_flags.reid_config_from_flags(values)


@pytest.mark.parametrize("parsing, config_class", [(False, config_lib.ReidConfig),
                                                   (True, config_lib.ParsingConfig)], ids=["train", "train_parsing"])
def test_flag_defaults_are_the_config_defaults(parsing, config_class):
    values = _binary_flags(parsing)
    values(["prog", "--train_data=/data/x", "--model_dir=/tmp/unused"])
    from_flags = (training_flags.parsing_config_from_flags if parsing else training_flags.reid_config_from_flags)
    assert from_flags(values) == config_class(train_data="/data/x")
    # The one documented difference between the binaries' shared flags: ParsingConfig's
    # optimization default, the paper's LIP schedule (30K iterations, ASPP and classifier at 10x).
    expected = config_lib.OptimizationConfig()
    if parsing:
        expected = dataclasses.replace(expected, total_steps=30_000, head_lr_multiplier=10.0)
    assert from_flags(values).optimization == expected
    assert from_flags(values).runtime == config_lib.RuntimeConfig()


def test_reid_input_size_default_is_the_baseline_builder_s():
    # models/spreid.py keeps its own default for direct callers; the training default must not drift from it.
    default = inspect.signature(build_baseline_model).parameters["input_size"].default
    assert config_lib.ReidConfig(train_data="x").input_size == default


def test_flagfiles_include_the_shared_bases_by_repository_relative_paths():
    included = set()
    for path in FLAGFILES + BASES:
        for line in open(path):
            match = re.match(r"--flagfile=(\S+)$", line.strip())
            if match:
                assert path not in BASES, f"{path}: a base includes no other flagfile (one level of nesting)"
                assert match.group(1).startswith("configs/base/"), f"{path}: {line.strip()}"
                assert os.path.isfile(os.path.join(REPO, match.group(1))), f"{path}: {line.strip()}"
                included.add(os.path.join(REPO, match.group(1)))
    assert BASES and included == set(BASES)


def test_no_two_flagfiles_are_the_same_run():
    configs = {os.path.basename(p): config_lib.to_dict(_parse(p)) for p in FLAGFILES}
    names = sorted(configs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert configs[a] != configs[b], f"{a} and {b} are the same run"


def test_every_paper_run_has_a_flagfile():
    names = {os.path.basename(p) for p in FLAGFILES}
    for name in ("all10.flags", "market.flags", "duke.flags", "cuhk03.flags", "lip_parsing.flags",
                 "synthetic.flags", "synthetic_parsing.flags", "all10_baseline_inception_v3.flags",
                 "all10_baseline_resnet50.flags", "all10_baseline_resnet152.flags", "all10_spreid_wo_fg.flags",
                 "all10_spreid_w_fg_exclusive.flags"):
        assert name in names


@pytest.mark.parametrize("path", FLAGFILES, ids=os.path.basename)
def test_flagfile_parses(path):
    config = _parse(path)
    opt = config.optimization
    name = os.path.basename(path)
    if name.startswith("synthetic"):
        assert config.weights is None
        return
    # The paper's optimiser: batch 15, Nesterov 0.9, weight decay 5e-4, clipping 2.0, 10 decays by 0.9.
    assert (opt.batch_size, opt.momentum, opt.nesterov, opt.weight_decay, opt.clip_norm) == (15, 0.9, True, 5e-4, 2.0)
    assert (opt.schedule, opt.num_decays, opt.decay_rate) == ("exponential", 10, 0.9)
    if name == "lip_parsing.flags":
        assert config.crop_size == (512, 512) and opt.total_steps == 30_000
        assert opt.learning_rate == 0.01 and opt.head_lr_multiplier == 10.0
    elif name.startswith("all10"):
        assert opt.total_steps == 200_000 and opt.learning_rate == 0.01
        assert config.train_data.endswith("label_map.json")
        assert config.input_size == ((492, 164) if config.model == "baseline" else (512, 170))
        assert config.init_from is None
    else:  # phase 2
        assert opt.total_steps == 50_000 and opt.learning_rate == 0.001
        assert config.input_size == (748, 246) and config.init_from


def test_flags_override_flagfile_and_config_round_trips(tmp_path):
    config = _parse(os.path.join(CONFIGS, "all10_spreid_wo_fg_exclusive.flags"), "--strategy=mirrored",
                    "--batch_size=16", "--reid_input_size=256,128")
    assert (config.variant, config.weight_sharing) == ("wo_fg", False)
    assert config.runtime.strategy == "mirrored" and config.optimization.batch_size == 16
    assert config.reid_input_size == (256, 128)
    path = config_lib.write_config(config, str(tmp_path), num_identities=16803)
    assert config_lib.read_config(str(tmp_path)) == config
    assert '"num_identities": 16803' in open(path).read()


def test_bad_values_fail_early():
    with pytest.raises(ValueError, match="unknown schedule"):
        config_lib.OptimizationConfig(schedule="cosine")
    with pytest.raises(ValueError, match="unknown strategy"):
        config_lib.RuntimeConfig(strategy="tpu")
    with pytest.raises(ValueError, match="unknown model"):
        config_lib.ReidConfig(train_data="x", model="resnet")
    with pytest.raises(flags.IllegalFlagValueError, match="HEIGHT,WIDTH"):
        _parse(os.path.join(CONFIGS, "market.flags"), "--input_size=748")


def test_synthetic_flagfiles_match_the_demo():
    from spreid_tf import demo

    settings = demo.DemoSettings()
    reid_config = _parse(os.path.join(CONFIGS, "synthetic.flags"))
    expected = demo.reid_config(settings, "baseline", reid_config.train_data, settings.seeds[0])
    assert reid_config.optimization == expected.optimization
    assert (reid_config.input_size, reid_config.model, reid_config.weights) == (settings.input_size, "baseline", None)
    parsing_config = _parse(os.path.join(CONFIGS, "synthetic_parsing.flags"))
    expected = demo.parsing_config(settings, parsing_config.train_data)
    assert parsing_config.optimization == expected.optimization
    for field in ("crop_size", "aspp_rates", "output_stride", "aspp_filters", "min_scale", "max_scale"):
        assert getattr(parsing_config, field) == getattr(expected, field), field


@pytest.mark.parametrize("binary, flag", [("spreid_tf.train", "--init_from"),
                                          ("spreid_tf.train_parsing", "--[no]decoder")])
def test_help_lists_the_binary_s_flags(binary, flag):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", binary, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]  # absl's --help exits with 1
    assert f"  {flag}:" in done.stdout and "  --learning_rate:" in done.stdout and "  --seed:" in done.stdout
