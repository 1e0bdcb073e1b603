"""Whether a command may use the server, and how long a server waits for work.

`--no-server` beats `MDRUN_SERVER` (on or off), which beats `server = false` in the nearest
pyproject.toml's `[tool.mdrun]` table; without any of them the server is on, except when the
`CI` variable is set (a CI machine runs once: a server would only cost it a process). Only the
standard library is imported here: the client decides before importing the rest of mdrun.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SERVER_ENVIRONMENT_VARIABLE = "MDRUN_SERVER"
IDLE_ENVIRONMENT_VARIABLE = "MDRUN_SERVER_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 600.0
"""A server with no request for this long exits (and its kernels with it)."""
NO_SERVER_FLAG = "--no-server"
_ON = frozenset({"on", "1", "true", "yes"})
_OFF = frozenset({"off", "0", "false", "no"})


class SettingError(Exception):
    """A setting of the server has a value that means nothing (exit 2)."""


class UnreadableProject(Exception):
    """The pyproject.toml cannot be read: the run itself will say why (in process)."""


def server_wanted(environ: Mapping[str, str], cwd: str) -> bool:
    """Whether the server is on for a command run in `cwd` (the flag is the caller's)."""
    value = environ.get(SERVER_ENVIRONMENT_VARIABLE, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    if value:
        raise SettingError(
            f"${SERVER_ENVIRONMENT_VARIABLE}={environ[SERVER_ENVIRONMENT_VARIABLE]!r}: "
            "expected on or off"
        )
    if project_setting(cwd) is False:
        return False
    return not environ.get("CI")


def project_setting(start: str) -> bool | None:
    """`server` in the `[tool.mdrun]` table of the nearest pyproject.toml that has one (the
    file `cache_settings` reads), or None."""
    for folder in _folder_and_parents(os.path.abspath(start)):
        path = os.path.join(folder, "pyproject.toml")
        if not os.path.isfile(path):
            continue
        import tomllib

        try:
            with open(path, encoding="utf-8") as stream:
                loaded = tomllib.loads(stream.read())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            raise UnreadableProject from None
        tool = loaded.get("tool")
        table = tool.get("mdrun") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            continue
        value = table.get("server")
        if value is None or isinstance(value, bool):
            return value
        raise SettingError(f"{path}: [tool.mdrun] server: expected true or false")
    return None


def _folder_and_parents(folder: str) -> list[str]:
    folders = [folder]
    while (parent := os.path.dirname(folders[-1])) != folders[-1]:
        folders.append(parent)
    return folders


def idle_seconds(environ: Mapping[str, str]) -> float:
    """How long a new server waits for a request before it exits."""
    text = environ.get(IDLE_ENVIRONMENT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_IDLE_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise SettingError(f"${IDLE_ENVIRONMENT_VARIABLE}={text!r}: expected a number of seconds")
    return seconds

