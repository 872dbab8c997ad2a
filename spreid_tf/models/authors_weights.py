"""The SPReID authors' released weights, read with h5py and mapped onto our layers (no Chainer needed).

Two formats, both from the public repository emrahbasaran/SPReID (MIT):

- Their trained parser, `LIP_iter_30000.chainermodel`: Chainer's `serializers.save_hdf5` of
  the parsing network (`InceptionV3(dilated=True)` as `predictor`, `Classifier(20)` as
  `classifiers/0`). Every convolution + batch norm unit is a group `<link>/conv` (dataset
  `W`, OIHW, no bias) and `<link>/bn` (`gamma`, `beta`, `avg_mean`, `avg_var`); the
  classifier is `classifiers/0/classifier/0/conv` (`W`, `b`). Links, in their code's order:

      predictor/convolution/0..4                 the stem's five convolutions
      predictor/inception/0/{0,1,2}/<branch>     mixed0-2 (35x35 blocks)
      predictor/grid_reduction/0/<branch>        mixed3
      predictor/inception/1/{0..3}/<branch>      mixed4-7 (17x17 blocks)
      predictor/grid_reduction/1/<branch>        mixed8
      predictor/inception/2/{0,1}/<branch>       mixed9, mixed10
      classifiers/0/ASPP/0..6                    image pooling, 1x1, rates 3, 6, 9, 12, projection

  where <branch> is `b` for a branch of one convolution, `b/k` for the k-th convolution of
  a longer branch, `b/k/j` inside a split (the 1x3 / 3x1 pair of mixed9-10); branches are
  numbered in concatenation order, pooling-only branches skipped.
- Their ImageNet InceptionV3 initialisation, `data/dump/<layer>.h5`, one file per
  convolution + batch norm unit with `weights` (HWIO), `beta`, `gamma`, `mean`, `var` (and
  `padding`, `strides`, not needed here); 94 files named as TF-slim's Inception-v3 of 2015:
  `conv`, `conv_1` .. `conv_4` (stem), then per block (`mixed`, `mixed_1` .. `mixed_10`) a
  single-convolution first branch `<block>_conv`, the other branches towers
  `<block>_tower`, `<block>_tower_1`, `<block>_tower_2` with convolutions `_conv`,
  `_conv_1`, ... and split convolutions `_mixed_conv`, `_mixed_conv_1`.

Both load into our network built with `authors=True` (`build_parsing_model(backbone=
"inception_v3_authors")`, `build_backbone("inception_v3_authors")`): the keras.applications
graph with the authors' batch norm, pooling and preprocessing (spreid_tf.models.inception_dilated).
Units are found by walking that graph from each `mixedN` concatenation back to the block's
input, never by Keras' per-session layer names. Every tensor is checked against the shape
the layer expects before anything is assigned; a missing or misshapen link is one
ValueError naming the link and the file.
"""

from __future__ import annotations

import dataclasses
import os

import h5py
import keras
import numpy as np

from spreid_tf.layers import ASPP, CeilModeMaxPooling2D, ImagePreprocessing, ZeroPaddedAveragePooling2D

NUM_BLOCKS = 11  # mixed0 .. mixed10
CLASSIFIER_LINK = "classifiers/0/classifier/0/conv"
ASPP_LINK = "classifiers/0/ASPP"
_POOLS = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, CeilModeMaxPooling2D,
          ZeroPaddedAveragePooling2D)


@dataclasses.dataclass(frozen=True)
class Unit:
    """One convolution + batch norm of our network, with its names in the authors' two formats."""

    chainer_link: str  # e.g. "predictor/inception/0/1/0" (the groups conv/ and bn/ are below it)
    dump_name: str  # e.g. "mixed_tower_conv" (the file data/dump/mixed_tower_conv.h5)
    conv: keras.layers.Conv2D
    bn: keras.layers.BatchNormalization


def _producer(tensor) -> tuple[keras.Operation, object]:
    operation, node_index, _ = tensor._keras_history
    return operation, operation._inbound_nodes[node_index]


def _unit_ending_at(tensor):
    """(conv, bn, the conv's input tensor) of the Conv2D -> BatchNormalization -> ReLU ending at `tensor`."""
    act, node = _producer(tensor)
    bn, bn_node = _producer(node.input_tensors[0])
    conv, conv_node = _producer(bn_node.input_tensors[0])
    if not (isinstance(act, keras.layers.Activation) and isinstance(bn, keras.layers.BatchNormalization)
            and isinstance(conv, keras.layers.Conv2D)):
        raise ValueError(f"expected Conv2D -> BatchNormalization -> Activation before {act.name}, got "
                         f"{type(conv).__name__} -> {type(bn).__name__} -> {type(act).__name__}")
    return conv, bn, conv_node.input_tensors[0]


def _branch(tensor, stop) -> tuple[list, bool]:
    """The units from `stop` (a tensor; None: the image) to `tensor`, in order; and whether it pools.

    Items are (conv, bn) pairs, or a list of pairs for a split (parallel convolutions of one
    input, concatenated).
    """
    items, pools = [], False
    while tensor is not stop:
        operation, node = _producer(tensor)
        if isinstance(operation, keras.layers.Activation):
            conv, bn, tensor = _unit_ending_at(tensor)
            items.append((conv, bn))
        elif isinstance(operation, keras.layers.Concatenate):
            split = [_unit_ending_at(t) for t in node.input_tensors]
            if any(s[2] is not split[0][2] for s in split):
                raise ValueError(f"{operation.name}: expected parallel convolutions of one input")
            items.append([(conv, bn) for conv, bn, _ in split])
            tensor = split[0][2]
        elif isinstance(operation, _POOLS):
            pools = True
            tensor = node.input_tensors[0]
        elif stop is None and isinstance(operation, (ImagePreprocessing, keras.layers.InputLayer)):
            break
        else:
            raise ValueError(f"unexpected layer {operation.name} ({type(operation).__name__}) in an InceptionV3 branch")
    return items[::-1], pools


def _block_names(index: int) -> tuple[str, str]:
    """(Chainer link prefix, dump name prefix) of block mixed<index>."""
    if index <= 2:
        link = f"predictor/inception/0/{index}"
    elif index == 3:
        link = "predictor/grid_reduction/0"
    elif index <= 7:
        link = f"predictor/inception/1/{index - 4}"
    elif index == 8:
        link = "predictor/grid_reduction/1"
    else:
        link = f"predictor/inception/2/{index - 9}"
    return link, "mixed" if index == 0 else f"mixed_{index}"


def _suffix(k: int) -> str:
    return "" if k == 0 else f"_{k}"


def _block_units(branches: list[tuple[list, bool]], link: str, dump: str) -> list[Unit]:
    units, towers = [], 0
    branches = [(items, pools) for items, pools in branches if items]  # pooling-only branches hold no weights
    for b, (items, pools) in enumerate(branches):
        if len(items) == 1 and not isinstance(items[0], list):
            chainer_paths = [f"{link}/{b}"]
        else:
            chainer_paths = []
            for k, item in enumerate(items):
                chainer_paths += ([f"{link}/{b}/{k}/{j}" for j in range(len(item))] if isinstance(item, list)
                                  else [f"{link}/{b}/{k}"])
        if b == 0 and len(items) == 1 and not pools and not isinstance(items[0], list):
            dump_names = [f"{dump}_conv"]
        else:
            tower = f"{dump}_tower{_suffix(towers)}"
            towers += 1
            dump_names, plain = [], 0
            for item in items:
                if isinstance(item, list):
                    dump_names += [f"{tower}_mixed_conv{_suffix(j)}" for j in range(len(item))]
                else:
                    dump_names.append(f"{tower}_conv{_suffix(plain)}")
                    plain += 1
        pairs = [pair for item in items for pair in (item if isinstance(item, list) else [item])]
        units += [Unit(c, d, conv, bn) for c, d, (conv, bn) in zip(chainer_paths, dump_names, pairs)]
    return units


def _is_authors_network(backbone: keras.Model) -> bool:
    bns = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    return bool(bns) and all(bn.scale for bn in bns) and any(isinstance(layer, CeilModeMaxPooling2D)
                                                            for layer in backbone.layers)


def inception_units(backbone: keras.Model) -> list[Unit]:
    """Every convolution + batch norm of the authors' InceptionV3 (plain or dilated), in the authors' order.

    Args:
        backbone: `build_backbone("inception_v3_authors")`, `build_dilated_inception_v3(authors=True)`
            or the backbone inside `build_parsing_model(backbone="inception_v3_authors")`.
    """
    if not _is_authors_network(backbone):
        raise ValueError(f"model {backbone.name!r} is not the authors' InceptionV3 (build it with "
                         "build_backbone('inception_v3_authors') or build_parsing_model(backbone="
                         "'inception_v3_authors'))")
    blocks = [backbone.get_layer(f"mixed{i}") for i in range(NUM_BLOCKS)]
    first_inputs = blocks[0]._inbound_nodes[0].input_tensors
    stem_output = _unit_ending_at(first_inputs[0])[2]  # mixed0's 1x1 branch reads the stem's output
    stem_items, _ = _branch(stem_output, None)
    units = [Unit(f"predictor/convolution/{k}", f"conv{_suffix(k)}", conv, bn)
             for k, (conv, bn) in enumerate(stem_items)]
    block_input = stem_output
    for index, block in enumerate(blocks):
        branches = [_branch(t, block_input) for t in block._inbound_nodes[0].input_tensors]
        units += _block_units(branches, *_block_names(index))
        block_input = block.output
    return units


def _read(file: h5py.File, path: str, link: str, shape: tuple, source: str) -> np.ndarray:
    if path not in file:
        raise ValueError(f"{source}: link {link!r} has no dataset {path!r} (expected shape {shape}); "
                         "is this the authors' LIP parsing model (Chainer save_hdf5 of InceptionV3(dilated=True) "
                         "+ Classifier(20))?")
    data = file[path]
    if not isinstance(data, h5py.Dataset) or data.shape != shape:
        got = data.shape if isinstance(data, h5py.Dataset) else "a group"
        raise ValueError(f"{source}: link {link!r}: {path} has shape {got}, expected {shape}")
    return np.asarray(data, dtype=np.float32)


def _oihw(kernel_shape: tuple) -> tuple:
    kh, kw, cin, cout = kernel_shape
    return (cout, cin, kh, kw)


def _chainer_conv_bn(file, link: str, conv, bn, source: str) -> dict:
    shape = tuple(conv.kernel.shape)
    if f"{link}/conv/b" in file:
        raise ValueError(f"{source}: link {link!r} has a bias (conv/b); the authors' convolutions before batch "
                         "norm have none")
    kernel = _read(file, f"{link}/conv/W", link, _oihw(shape), source).transpose(2, 3, 1, 0)
    channels = (shape[-1],)
    bn_values = [_read(file, f"{link}/bn/{name}", link, channels, source)
                 for name in ("gamma", "beta", "avg_mean", "avg_var")]
    return {conv: [kernel], bn: bn_values}


def _open(path: str | os.PathLike, what: str) -> h5py.File:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{what} {path!r} is not an HDF5 file ({error})") from None


def _assign(values: dict) -> int:
    for layer, weights in values.items():
        expected = [tuple(w.shape) for w in layer.weights]
        if [w.shape for w in weights] != expected:  # a bug here, not a user error: shapes were checked on reading
            raise AssertionError(f"{layer.name}: {[w.shape for w in weights]} vs {expected}")
        layer.set_weights(weights)
    return sum(len(w) for w in values.values())


def parsing_backbone(model: keras.Model) -> keras.Model:
    """The InceptionV3 sub-model of a parsing model."""
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(inner) != 1:
        raise ValueError(f"model {model.name!r} is not a parsing model from build_parsing_model "
                         f"(expected one backbone sub-model, found {len(inner)})")
    return inner[0]


def load_chainer_parsing_model(path: str | os.PathLike, model: keras.Model) -> int:
    """Loads the authors' `LIP_iter_30000.chainermodel` (Chainer save_hdf5) into our parsing model.

    Args:
        path: the .chainermodel file.
        model: `build_parsing_model(backbone="inception_v3_authors")` (any input shape).

    Returns:
        The number of weight tensors assigned. Nothing is assigned unless every link is
        present with the right shape.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not HDF5, or a link missing or misshapen (the message names it and the file).
    """
    source = os.fspath(path)
    aspp = model.get_layer("aspp")
    classifier = model.get_layer("classifier")
    if not isinstance(aspp, ASPP) or len(aspp.rates) != 4 or not isinstance(classifier, keras.layers.Conv2D):
        raise ValueError(f"model {model.name!r} is not the authors' parsing network (ASPP with four rates and a "
                         "1x1 classifier): build it with build_parsing_model(backbone='inception_v3_authors')")
    values = {}
    with _open(path, "Chainer model file") as file:
        for unit in inception_units(parsing_backbone(model)):
            values.update(_chainer_conv_bn(file, unit.chainer_link, unit.conv, unit.bn, source))
        aspp_units = [(aspp.pool_conv, aspp.pool_bn), (aspp.pointwise_conv, aspp.pointwise_bn),
                      *aspp.atrous, (aspp.project_conv, aspp.project_bn)]
        for i, (conv, bn) in enumerate(aspp_units):
            values.update(_chainer_conv_bn(file, f"{ASPP_LINK}/{i}", conv, bn, source))
        kernel_shape = tuple(classifier.kernel.shape)
        kernel = _read(file, f"{CLASSIFIER_LINK}/W", CLASSIFIER_LINK, _oihw(kernel_shape), source)
        bias = _read(file, f"{CLASSIFIER_LINK}/b", CLASSIFIER_LINK, (kernel_shape[-1],), source)
        values[classifier] = [kernel.transpose(2, 3, 1, 0), bias]
    return _assign(values)


def dump_names(backbone: keras.Model) -> list[str]:
    """The layer files (without `.h5`) the authors' dump must hold for `backbone`, in network order."""
    return [unit.dump_name for unit in inception_units(backbone)]


def load_authors_dump(dump_dir: str | os.PathLike, backbone: keras.Model) -> int:
    """Loads the authors' ImageNet InceptionV3 dump (`data/dump/<layer>.h5`) into our authors' InceptionV3.

    Args:
        dump_dir: the folder of layer files.
        backbone: `build_backbone("inception_v3_authors")` or `build_dilated_inception_v3(authors=True)`.

    Returns:
        The number of weight tensors assigned (nothing is assigned unless every file is good).

    Raises:
        FileNotFoundError: the folder, or layer files (all of them listed in one message), missing.
        ValueError: a file that is not HDF5, or a dataset missing or misshapen (named with its file).
    """
    dump_dir = os.fspath(dump_dir)
    if not os.path.isdir(dump_dir):
        raise FileNotFoundError(f"authors' dump folder {dump_dir!r} does not exist (expected data/dump/ of "
                                "emrahbasaran/SPReID: one <layer>.h5 per convolution)")
    units = inception_units(backbone)
    missing = [u.dump_name + ".h5" for u in units if not os.path.isfile(os.path.join(dump_dir, u.dump_name + ".h5"))]
    if missing:
        raise FileNotFoundError(f"authors' dump folder {dump_dir!r} lacks {len(missing)} of the {len(units)} layer "
                                f"files: {', '.join(missing)}")
    values = {}
    for unit in units:
        source = os.path.join(dump_dir, unit.dump_name + ".h5")
        shape = tuple(unit.conv.kernel.shape)
        with _open(source, "layer file") as file:
            kernel = _read(file, "weights", unit.dump_name, shape, source)
            values[unit.conv] = [kernel]
            values[unit.bn] = [_read(file, name, unit.dump_name, (shape[-1],), source)
                               for name in ("gamma", "beta", "mean", "var")]
    return _assign(values)
