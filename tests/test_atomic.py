"""Atomic writes end with ordinary permissions and leave nothing behind on failure."""

from __future__ import annotations

import os
import stat

import pytest

from spreid_tf import atomic


@pytest.fixture
def umask():
    """Sets a umask for the test and restores the previous one."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask):
        os.umask(mask)

    yield set_mask
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                          (0o002, 0o664, 0o775)])
def test_modes_follow_the_umask(tmp_path, umask, mask, file_mode, folder_mode):
    umask(mask)
    atomic.write_text(tmp_path / "a" / "results.md", "x")
    atomic.write_bytes(tmp_path / "b.png", b"\x89PNG")
    with atomic.atomic_file(tmp_path / "c.npz") as f:
        f.write(b"1")
    folder = atomic.make_temporary_folder(tmp_path / "exports", ".1.tmp-")
    # What open() and mkdir give, for comparison.
    (tmp_path / "plain.txt").write_text("x")
    (tmp_path / "plain").mkdir()
    assert atomic.file_mode() == file_mode == _mode(tmp_path / "plain.txt")
    assert atomic.folder_mode() == folder_mode == _mode(tmp_path / "plain")
    for name in ("a/results.md", "b.png", "c.npz"):
        assert _mode(tmp_path / name) == file_mode, name
    assert _mode(folder) == folder_mode and os.listdir(folder) == []
    assert (tmp_path / "a" / "results.md").read_text() == "x"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_file(target, "w") as f:
            f.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
