"""The client's decisions, made before anything but the standard library is imported: which
command lines a server may run, which server, whether the server is on; and the protocol."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import mdrun
from mdrun.server import address, protocol
from mdrun.server.address import FolderError, ensure_private_folder, server_name
from mdrun.server.client import served_command
from mdrun.server.settings import SettingError, server_wanted


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "doc.md"], "run"),
        (["--store", "run", "check", "doc.md"], "check"),  # `run` is --store's value
        (["--cache=x", "run", "doc.md", "-o", "-"], "run"),  # stdout is relayed
        (["check", "docs/", "--keep-going"], "check"),
        (["run", "-"], None),  # standard input stays with the client
        (["run", "doc.md", "--no-server"], None),
        (["run", "doc.md", "--no-serv"], None),  # argparse takes abbreviations
        (["run", "doc.md", "-j", "2"], None),
        (["run", "--help"], None),
        (["status", "doc.md"], None),
        (["watch", "doc.md"], None),
        ([], None),
    ],
)
def test_served_command(argv: list[str], expected: str | None) -> None:
    assert served_command(argv) == expected


def test_client_imports_only_the_standard_library() -> None:
    """Deciding costs the client Python's start, not mdrun's or jupyter_client's imports."""
    code = (
        "import sys, mdrun.server.client; "
        "print(sorted(m for m in sys.modules if m.startswith(('mdrun.', 'jupyter', 'rich', "
        "'zmq', 'markdown_it', 'dataclasses', 'pathlib', 'typing'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    expected = ["mdrun.server", "mdrun.server.address", "mdrun.server.client",
                "mdrun.server.protocol", "mdrun.server.settings"]  # fmt: skip
    assert loaded.strip() == str(expected)


def test_server_name_ignores_shell_noise_only() -> None:
    base = {"PATH": "/usr/bin", "MDRUN_STORE": "/s", "PWD": "/a", "SHLVL": "1"}
    assert server_name(base) == server_name({**base, "PWD": "/b", "SHLVL": "3", "_": "x"})
    assert server_name(base) != server_name({**base, "MDRUN_STORE": "/other"})
    assert server_name(base) != server_name({**base, "PYTHONPATH": "/p"})


def test_server_setting_precedence(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.mdrun]\nserver = false\n")
    cwd = str(project / "sub")
    assert server_wanted({}, str(tmp_path)) is True
    assert server_wanted({"CI": "true"}, str(tmp_path)) is False
    assert server_wanted({"CI": "true", "MDRUN_SERVER": "on"}, str(tmp_path)) is True
    assert server_wanted({}, cwd) is False
    assert server_wanted({"MDRUN_SERVER": "on"}, cwd) is True
    assert server_wanted({"MDRUN_SERVER": "OFF"}, str(tmp_path)) is False
    with pytest.raises(SettingError, match="expected on or off"):
        server_wanted({"MDRUN_SERVER": "maybe"}, str(tmp_path))
    (project / "pyproject.toml").write_text('[tool.mdrun]\nserver = "no"\n')
    with pytest.raises(SettingError, match=r"pyproject.toml: \[tool.mdrun\] server: expected"):
        server_wanted({}, cwd)


def test_private_folder_is_made_and_others_refused(tmp_path: Path) -> None:
    made = tmp_path / "made"
    ensure_private_folder(str(made))
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    open_to_group = tmp_path / "open"
    open_to_group.mkdir(mode=0o750)
    open_to_group.chmod(0o750)
    with pytest.raises(FolderError, match=r"others may open it \(mode 750\)"):
        ensure_private_folder(str(open_to_group))
    link = tmp_path / "link"
    link.symlink_to(made)
    with pytest.raises(FolderError, match="it is not a folder"):
        ensure_private_folder(str(link))
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 12345, 12345)
        with pytest.raises(FolderError, match="belongs to uid 12345"):
            ensure_private_folder(str(foreign))


def test_protocol_frames_round_trip_and_refuse_oversized_ones() -> None:
    left, right = socket.socketpair()
    with left, right:
        message = {"type": "output", "stream": "stdout", "data": "é\udcff\n" * 1000}
        protocol.send(left, message)
        assert protocol.receive(right) == message
        left.sendall(protocol.HEADER.pack(protocol.MAX_REQUEST_BYTES + 1))
        with pytest.raises(protocol.ProtocolError, match="at most"):
            protocol.receive(right)
        left.sendall(protocol.HEADER.pack(2) + b"[]")
        with pytest.raises(protocol.ProtocolError, match="without a type"):
            protocol.receive(right)
        left.close()
        with pytest.raises(protocol.ConnectionClosed):
            protocol.receive(right)


def test_server_name_stays_put_when_bytecode_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python writing bytecode after an install must not rename the server (a server started
    right after would see other "sources" and exit), while an edited source must."""
    package = tmp_path / "mdrun"
    (package / "document").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    source = package / "document" / "plan.py"
    source.write_text("x = 1\n", encoding="utf-8")
    monkeypatch.setattr(mdrun, "__file__", str(package / "__init__.py"))
    before = address.source_fingerprint()
    for folder in (package, package / "document"):
        (folder / "__pycache__").mkdir()
        (folder / "__pycache__" / "plan.cpython-311.pyc").write_bytes(b"bytecode")
    assert address.source_fingerprint() == before
    source.write_text("x = 22\n", encoding="utf-8")
    assert address.source_fingerprint() != before
