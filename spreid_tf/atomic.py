"""Atomic file writes: a sibling temporary file renamed over the target, with ordinary permissions.

`tempfile.mkstemp` creates files readable by their owner only (0600) and `mkdtemp` folders
0700; renamed into place as they are, a TF Serving process running as another user could not
read an export, nor a colleague a results file. Everything here ends with the permissions
`open()` would have given (0666 / 0777 less the process umask).

    with atomic_file("out/features.npz") as f:
        np.savez(f, embeddings=...)
    write_text("out/results.md", text)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask can only read by setting)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode `open()` gives a new file: 0666 less the umask (0644 under umask 022)."""
    return 0o666 & ~_umask()


def folder_mode() -> int:
    """The mode `os.mkdir` gives a new folder: 0777 less the umask (0755 under umask 022)."""
    return 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Opens a temporary sibling of `path` for writing; on success renames it to `path`.

    On an exception (Ctrl-C included) the temporary file is removed and `path` is left as it
    was. Parent folders are created.
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        text = {} if "b" in mode else {"newline": "", "encoding": "utf-8"}
        with os.fdopen(fd, mode, **text) as f:
            yield f
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    with atomic_file(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes UTF-8 `text` to `path` atomically."""
    with atomic_file(path, "w") as f:
        f.write(text)


def make_temporary_folder(parent: str | os.PathLike, prefix: str) -> str:
    """A new empty folder in `parent` (to be renamed into place), with ordinary permissions."""
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(folder, folder_mode())
    return folder
