"""Writing real MATLAB files for miniatures: v7.3 (HDF5) with cell arrays, and v5.

MATLAB's `save -v7.3` writes an HDF5 file behind a 512-byte user block that starts
with the MAT-file text header; each variable is a dataset at the root with a
`MATLAB_class` attribute. Arrays are stored column-major, so h5py sees every
MATLAB array with its axes reversed (an HxWx3 image is a (3, W, H) dataset; an
m x n cell is an (n, m) dataset). A cell is a dataset of HDF5 object references to
datasets in the `#refs#` group; an empty cell element (`[]`) is a uint64 dataset
holding its dimensions ([0, 0]) with the attribute `MATLAB_empty = 1`.

    cell = np.empty((5, 1), dtype=object)   # a 5x1 MATLAB cell
    write_mat73("cuhk-03.mat", {"labeled": cell, ...})

`write_mat5` is `scipy.io.savemat` (classic v5 files such as CUHK03's protocol
configs); `MatlabCell` values are cells, 1-D arrays are saved as column vectors.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io

USERBLOCK_SIZE = 512
HEADER_TEXT = ("MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 "
               "HDF5 schema 1.00 .")

_MATLAB_CLASS = {
    np.dtype(np.uint8): "uint8", np.dtype(np.int8): "int8",
    np.dtype(np.uint16): "uint16", np.dtype(np.int16): "int16",
    np.dtype(np.uint32): "uint32", np.dtype(np.int32): "int32",
    np.dtype(np.uint64): "uint64", np.dtype(np.int64): "int64",
    np.dtype(np.float32): "single", np.dtype(np.float64): "double",
    np.dtype(np.bool_): "logical",
}


def mat73_header() -> bytes:
    """The 128-byte MAT-file header MATLAB writes at the start of a v7.3 file."""
    text = HEADER_TEXT.encode("ascii").ljust(116, b" ")
    subsys_offset = b"\x00" * 8
    version = (0x0200).to_bytes(2, "little")
    return text + subsys_offset + version + b"IM"


def _set_class(obj: h5py.Dataset, matlab_class: str) -> None:
    obj.attrs.create("MATLAB_class", np.bytes_(matlab_class))


class _Writer:
    def __init__(self, f: h5py.File):
        self.f = f
        self.refs = f.create_group("#refs#")
        self.names = (("".join(p) for n in itertools.count(1)
                       for p in itertools.product("abcdefghijklmnopqrstuvwxyz", repeat=n)))

    def _new_name(self) -> str:
        return next(self.names)

    def write(self, group: h5py.Group, name: str, value: Any) -> h5py.Dataset:
        """Writes `value` (ndarray, number, object ndarray = cell, None = []) as `group[name]`."""
        if value is None or (isinstance(value, np.ndarray) and value.dtype != object and value.size == 0):
            dims = (0, 0) if value is None else value.shape
            ds = group.create_dataset(name, data=np.array(dims, dtype=np.uint64))
            _set_class(ds, "double" if value is None else _MATLAB_CLASS.get(value.dtype, "double"))
            ds.attrs.create("MATLAB_empty", np.uint8(1))
            return ds
        if isinstance(value, np.ndarray) and value.dtype == object:
            cell = value if value.ndim >= 2 else value.reshape(-1, 1)
            refs = np.empty(cell.shape, dtype=h5py.ref_dtype)
            for index in np.ndindex(cell.shape):
                refs[index] = self.write(self.refs, self._new_name(), cell[index]).ref
            ds = group.create_dataset(name, data=refs.T, dtype=h5py.ref_dtype)
            _set_class(ds, "cell")
            return ds
        array = np.asarray(value)
        if array.ndim < 2:
            array = array.reshape(1, -1) if array.ndim == 1 else array.reshape(1, 1)
        if array.dtype not in _MATLAB_CLASS:
            raise TypeError(f"{name}: cannot write dtype {array.dtype} as a MATLAB array")
        ds = group.create_dataset(name, data=np.ascontiguousarray(array.T))
        _set_class(ds, _MATLAB_CLASS[array.dtype])
        return ds


def write_mat73(path: os.PathLike | str, variables: dict[str, Any]) -> Path:
    """Writes `variables` as a MATLAB v7.3 MAT-file (HDF5 with the MATLAB user block).

    Args:
        path: file to write.
        variables: name -> numeric ndarray (MATLAB shape), object ndarray (a cell, each
            element written recursively), or None (an empty `[]`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=USERBLOCK_SIZE, libver="earliest") as f:
        writer = _Writer(f)
        for name, value in variables.items():
            writer.write(f, name, value)
    with open(path, "r+b") as f:
        f.write(mat73_header())
    return path


def write_mat5(path: os.PathLike | str, variables: dict[str, Any]) -> Path:
    """Writes `variables` as a classic MATLAB v5 MAT-file (scipy.io.savemat).

    Object ndarrays become cells (e.g. of file names); 1-D arrays become column vectors.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), variables, format="5", oned_as="column", do_compression=False)
    return path
