"""Where a server listens: a private folder of the user's, and a name that says which
interpreter, which mdrun (its version and sources) and which environment it serves.

Runs that differ in any of these never share a server: an edited checkout, another virtualenv
or another `MDRUN_STORE` gets a server of its own. Only the standard library is imported here.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from collections.abc import Mapping

import mdrun

FOLDER_ENVIRONMENT_VARIABLE = "MDRUN_SERVER_FOLDER"
"""An explicit folder for the servers' sockets (tests and benchmarks use one of their own)."""
ENVIRONMENT_NOISE = frozenset(
    {
        "PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES",
        "MDRUN_SERVER", "MDRUN_SERVER_FOLDER", "MDRUN_SERVER_IDLE_SECONDS",
    }
)  # fmt: skip
"""Variables that differ between shells without changing what a run does, and the server's own
settings: left out of the name, so that they do not split servers."""
SOCKET_PATH_LIMIT = 107
"""The longest path a Unix socket may have (108 bytes with the final NUL, on Linux)."""


class FolderError(Exception):
    """The servers' folder is missing and cannot be made, or others could open it."""


class ServerAddress:
    """The files of one server, all in its folder (plain strings and no dataclass: the client
    imports this module, and pathlib and dataclasses would double its start-up time)."""

    __slots__ = ("folder", "name")

    def __init__(self, folder: str, name: str) -> None:
        self.folder = folder
        """The private folder."""
        self.name = name
        """The hash that picks the server (see `server_name`)."""

    def __repr__(self) -> str:
        return f"ServerAddress({self.folder!r}, {self.name!r})"

    def _file(self, suffix: str) -> str:
        return os.path.join(self.folder, self.name + suffix)

    @property
    def socket(self) -> str:
        """Where it listens."""
        return self._file(".sock")

    @property
    def lock(self) -> str:
        """Held while it runs: two servers of one name never run at once."""
        return self._file(".lock")

    @property
    def log(self) -> str:
        """Its standard output and error (it has no terminal)."""
        return self._file(".log")

    @property
    def usable(self) -> bool:
        """Whether the socket's path fits the system's limit."""
        return len(os.fsencode(self.socket)) <= SOCKET_PATH_LIMIT


def server_folder(environ: Mapping[str, str]) -> str:
    """`$MDRUN_SERVER_FOLDER`, else `$XDG_RUNTIME_DIR/mdrun` when that folder is the user's,
    else `mdrun-UID` in the temporary folder; made private if missing, refused if not private."""
    explicit = environ.get(FOLDER_ENVIRONMENT_VARIABLE)
    if explicit:
        folder = os.path.abspath(explicit)
    else:
        runtime = environ.get("XDG_RUNTIME_DIR")
        if runtime and _is_own_folder(runtime):
            folder = os.path.join(runtime, "mdrun")
        else:
            temporary = environ.get("TMPDIR") or "/tmp"
            folder = os.path.join(os.path.abspath(temporary), f"mdrun-{os.getuid()}")
    ensure_private_folder(folder)
    return folder


def _is_own_folder(path: str) -> bool:
    try:
        status = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid()


def ensure_private_folder(folder: str) -> None:
    """Make `folder` (mode 0700) if it is missing; refuse it unless it is a folder (not a
    link) of this user's that no one else can open."""
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as err:
        raise FolderError(
            f"{folder}: cannot make the mdrun server's folder: {err.strerror}"
        ) from None
    try:
        status = os.lstat(folder)
    except OSError as err:
        raise FolderError(
            f"{folder}: cannot read the mdrun server's folder: {err.strerror}"
        ) from None
    if not stat.S_ISDIR(status.st_mode):
        problem = "it is not a folder"
    elif status.st_uid != os.getuid():
        problem = f"it belongs to uid {status.st_uid}, not to you (uid {os.getuid()})"
    elif status.st_mode & 0o077:
        problem = f"others may open it (mode {stat.S_IMODE(status.st_mode):o})"
    else:
        return
    raise FolderError(
        f"{folder}: refused as the mdrun server's folder: {problem}; it must be a folder of "
        "yours with mode 700 (fix or remove it, or turn the server off with MDRUN_SERVER=off)"
    )


def server_name(environ: Mapping[str, str]) -> str:
    """The hash of what a server must share with a run: the interpreter, mdrun's version and
    sources, and the environment without its noise."""
    environment = sorted(
        (key, value) for key, value in environ.items() if key not in ENVIRONMENT_NOISE
    )
    identity = [sys.executable, mdrun.__version__, source_fingerprint(), environment]
    text = json.dumps(identity, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:24]


def source_fingerprint() -> str:
    """A digest of the path, size and modification time of each of mdrun's files (its package
    folder's, bytecode left out): cheap (no file is read), and it changes when a checkout is
    edited."""
    package = os.path.dirname(mdrun.__file__)
    entries: list[str] = []
    pending = [package]
    while pending:
        with os.scandir(pending.pop()) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        pending.append(entry.path)
                elif not entry.name.endswith(".pyc"):
                    status = entry.stat()
                    entries.append(f"{entry.path}:{status.st_size}:{status.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(sorted(entries)).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def server_address(environ: Mapping[str, str]) -> ServerAddress:
    """The address of the server for a run in this environment."""
    return ServerAddress(server_folder(environ), server_name(environ))
