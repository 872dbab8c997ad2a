"""Reading the authors' weight files (spreid_tf.models.authors_weights): names, formats, errors.

The real layer files are two files of the authors' ImageNet dump, in the shared fixtures
(../shared/fixtures/spreid_authors_dump beside the repository). That our network computes
the authors' function is tests/models/test_chainer_parity.py.
"""

from __future__ import annotations

import os
import shutil

import h5py
import keras
import numpy as np
import pytest

from spreid_tf.models import authors_weights, build_backbone, build_parsing_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(os.path.dirname(REPO), "shared", "fixtures", "spreid_authors_dump")
REAL_FILES = {"mixed_2_conv": (1, 1, 288, 64), "mixed_10_tower_1_mixed_conv": (1, 3, 384, 384)}


@pytest.fixture(scope="module")
def parsing_model():
    return build_parsing_model(backbone="inception_v3_authors", input_shape=(None, None, 3))


@pytest.fixture(scope="module")
def units(parsing_model):
    return {unit.dump_name: unit for unit in authors_weights.inception_units(
        authors_weights.parsing_backbone(parsing_model))}


@pytest.fixture()
def dump_dir(units, tmp_path):
    """A complete dump: the two real files, zeros (of the right shapes) for the other 92."""
    if not os.path.isdir(FIXTURES):
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing fixtures {FIXTURES}")
        pytest.skip(f"no fixtures at {FIXTURES}")
    for name, unit in units.items():
        if name in REAL_FILES:
            shutil.copy(os.path.join(FIXTURES, name + ".h5"), tmp_path / (name + ".h5"))
            continue
        shape = tuple(unit.conv.kernel.shape)
        with h5py.File(tmp_path / (name + ".h5"), "w") as f:
            f["weights"] = np.zeros(shape, np.float32)
            for key in ("beta", "gamma", "mean", "var"):
                f[key] = np.full(shape[-1], 0.5, np.float32)
    return tmp_path


def test_units_carry_the_authors_names_in_both_formats(units):
    assert len(units) == 94  # the dump's README: 94 convolution layers
    links = [u.chainer_link for u in units.values()]
    assert len(set(links)) == 94
    # One unit of each kind of block and branch (modelx.py's names and ChainList positions).
    expected = {
        "conv_4": ("predictor/convolution/4", (3, 3, 80, 192)),
        "mixed_tower_2_conv": ("predictor/inception/0/0/3", (1, 1, 192, 32)),
        "mixed_2_conv": ("predictor/inception/0/2/0", (1, 1, 288, 64)),
        "mixed_3_tower_conv_2": ("predictor/grid_reduction/0/1/2", (3, 3, 96, 96)),
        "mixed_5_tower_1_conv_3": ("predictor/inception/1/1/2/3", (7, 1, 160, 160)),
        "mixed_8_tower_conv_1": ("predictor/grid_reduction/1/0/1", (3, 3, 192, 320)),
        "mixed_8_tower_1_conv_3": ("predictor/grid_reduction/1/1/3", (3, 3, 192, 192)),
        "mixed_9_tower_mixed_conv_1": ("predictor/inception/2/0/1/1/1", (3, 1, 384, 384)),
        "mixed_10_tower_1_mixed_conv": ("predictor/inception/2/1/2/2/0", (1, 3, 384, 384)),
        "mixed_10_tower_2_conv": ("predictor/inception/2/1/3", (1, 1, 2048, 192)),
    }
    for name, (link, shape) in expected.items():
        assert (units[name].chainer_link, tuple(units[name].conv.kernel.shape)) == (link, shape), name
    # The dilated blocks' 3x3 convolutions are dilated; the 1x1 ones not.
    assert units["mixed_10_tower_1_conv_1"].conv.dilation_rate == (2, 2)
    assert units["mixed_10_tower_1_conv"].conv.dilation_rate == (1, 1)


def test_real_dump_files_load_into_their_layers(units, parsing_model, dump_dir):
    count = authors_weights.load_authors_dump(dump_dir, authors_weights.parsing_backbone(parsing_model))
    assert count == 94 * 5
    for name, shape in REAL_FILES.items():
        with h5py.File(os.path.join(FIXTURES, name + ".h5"), "r") as f:
            assert f["weights"].shape == shape
            np.testing.assert_array_equal(units[name].conv.get_weights()[0], f["weights"][()])  # HWIO as is
            gamma, beta, mean, var = units[name].bn.get_weights()
            for got, key in ((gamma, "gamma"), (beta, "beta"), (mean, "mean"), (var, "var")):
                np.testing.assert_array_equal(got, f[key][()])
    assert units["mixed_2_conv"].bn.epsilon == pytest.approx(2e-5)


def test_missing_dump_files_are_listed_in_one_error(units, parsing_model, dump_dir):
    os.remove(dump_dir / "conv_1.h5")
    os.remove(dump_dir / "mixed_9_tower_2_conv.h5")
    with pytest.raises(FileNotFoundError) as error:
        authors_weights.load_authors_dump(dump_dir, authors_weights.parsing_backbone(parsing_model))
    message = str(error.value)
    assert "\n" not in message and str(dump_dir) in message and "lacks 2 of the 94" in message
    assert "conv_1.h5" in message and "mixed_9_tower_2_conv.h5" in message


def test_a_misshapen_dump_dataset_names_its_file(units, parsing_model, dump_dir):
    with h5py.File(dump_dir / "mixed_2_conv.h5", "r+") as f:
        del f["var"]
        f["var"] = np.ones(63, np.float32)
    before = units["mixed_conv"].conv.get_weights()[0].copy()
    with pytest.raises(ValueError) as error:
        authors_weights.load_authors_dump(dump_dir, authors_weights.parsing_backbone(parsing_model))
    message = str(error.value)
    assert "\n" not in message and "mixed_2_conv.h5" in message and "var" in message and "(63,)" in message
    np.testing.assert_array_equal(units["mixed_conv"].conv.get_weights()[0], before)  # nothing assigned


def _write_chainer_file(path, parsing_model, units):
    """A save_hdf5-shaped file from chosen arrays: OIHW kernels, bn gamma/beta/avg_mean/avg_var, N."""
    rng = np.random.default_rng(0)
    aspp = parsing_model.get_layer("aspp")
    groups = [(u.chainer_link, u.conv) for u in units.values()] + [
        (f"classifiers/0/ASPP/{i}", conv) for i, conv in enumerate(
            [aspp.pool_conv, aspp.pointwise_conv, *[c for c, _ in aspp.atrous], aspp.project_conv])]
    written = {}
    with h5py.File(path, "w") as f:
        for link, conv in groups:
            kh, kw, cin, cout = conv.kernel.shape
            w = rng.normal(size=(cout, cin, kh, kw)).astype(np.float32) if kh * kw > 1 and cin < 200 else \
                np.zeros((cout, cin, kh, kw), np.float32)
            f[f"{link}/conv/W"] = w
            for key in ("gamma", "beta", "avg_mean", "avg_var"):
                f[f"{link}/bn/{key}"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
            f[f"{link}/bn/N"] = 3
            written[link] = w
        f["classifiers/0/classifier/0/conv/W"] = rng.normal(size=(20, 1024, 1, 1)).astype(np.float32)
        f["classifiers/0/classifier/0/conv/b"] = rng.normal(size=20).astype(np.float32)
    return written


def test_chainer_links_load_with_oihw_kernels_turned_hwio(units, parsing_model, tmp_path):
    path = tmp_path / "LIP_iter_30000.chainermodel"
    written = _write_chainer_file(path, parsing_model, units)
    assert authors_weights.load_chainer_parsing_model(path, parsing_model) == 94 * 5 + 7 * 5 + 2
    unit = units["mixed_8_tower_1_conv_1"]  # a 1x7 kernel: W (192, 192, 1, 7) -> (1, 7, 192, 192)
    np.testing.assert_array_equal(unit.conv.get_weights()[0], written[unit.chainer_link].transpose(2, 3, 1, 0))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(unit.bn.get_weights()[3], f[f"{unit.chainer_link}/bn/avg_var"][()])
        np.testing.assert_array_equal(parsing_model.get_layer("classifier").get_weights()[1],
                                      f["classifiers/0/classifier/0/conv/b"][()])


@pytest.mark.parametrize("damage", ["missing", "misshapen"])
def test_a_broken_chainer_link_is_one_error_naming_link_and_file(units, parsing_model, tmp_path, damage):
    path = tmp_path / "broken.chainermodel"
    _write_chainer_file(path, parsing_model, units)
    link = "classifiers/0/ASPP/3"  # the rate-6 branch
    with h5py.File(path, "r+") as f:
        del f[f"{link}/conv/W"]
        if damage == "misshapen":
            f[f"{link}/conv/W"] = np.zeros((256, 2048, 3, 1), np.float32)
    with pytest.raises(ValueError) as error:
        authors_weights.load_chainer_parsing_model(path, parsing_model)
    message = str(error.value)
    assert "\n" not in message and str(path) in message and repr(link) in message
    assert "(256, 2048, 3, 3)" in message


def test_other_networks_and_files_are_refused(parsing_model, tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization(scale=False)(keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="is not the authors' InceptionV3"):
        authors_weights.inception_units(keras.Model(inputs, x))
    with pytest.raises(ValueError, match="weights='imagenet'"):
        build_backbone("inception_v3_authors", weights="imagenet")
    (tmp_path / "not.chainermodel").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="is not an HDF5 file"):
        authors_weights.load_chainer_parsing_model(tmp_path / "not.chainermodel", parsing_model)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        authors_weights.load_authors_dump(tmp_path / "nowhere", authors_weights.parsing_backbone(parsing_model))
