"""mdrun's one atomic writer: a file or link appears whole or not at all, and nothing is left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mdrun.core.files import replaced_atomically, temporary_beside, write_atomically
from mdrun.errors import FileAccessError


def test_write_atomically_replaces_content_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_bytes(b"old\n")
    path.chmod(0o640)
    write_atomically(path, "new\r\n")
    assert path.read_bytes() == b"new\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["doc.md"]


def test_write_atomically_follows_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real.md"
    target.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    write_atomically(link, "new")
    assert link.is_symlink()
    assert target.read_text() == "new"


def test_write_atomically_leaves_nothing_behind_on_error(tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_atomically(path, "bad \udc80 surrogate")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["doc.md"]


def test_write_atomically_names_the_file_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(FileAccessError, match=r"missing/doc\.md: cannot write it"):
        write_atomically(tmp_path / "missing" / "doc.md", b"x")


def test_a_replacement_appears_only_when_the_block_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "archive.tar"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), replaced_atomically(path) as temporary:
        temporary.write_bytes(b"half")
        assert path.read_bytes() == b"old"
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == ["archive.tar"]
    assert path.read_bytes() == b"old"
    with replaced_atomically(path, durable=True) as temporary:
        temporary.write_bytes(b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["archive.tar"]


def test_a_link_is_replaced_in_one_step(tmp_path: Path) -> None:
    link = tmp_path / "root"
    link.symlink_to("first")
    with replaced_atomically(link) as temporary:
        os.symlink("second", temporary)
    assert os.readlink(link) == "second"
    assert os.listdir(tmp_path) == ["root"]


def test_a_temporary_beside_is_always_removed(tmp_path: Path) -> None:
    with temporary_beside(tmp_path / "download") as temporary:
        temporary.write_bytes(b"data")
        assert temporary.parent == tmp_path
    assert os.listdir(tmp_path) == []
