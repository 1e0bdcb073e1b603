"""Where the remote cache is, and whose signatures are trusted: the command line, the
environment, then the project's `pyproject.toml`.

    [tool.mdrun]
    cache = "s3://bucket/mdrun"            # or a folder (relative to pyproject.toml), https://...
    trusted-keys = ["mdrun-ed25519:..."]   # public keys whose signed snapshots may be loaded

`--cache URL` beats `MDRUN_CACHE`, which beats the file (an empty value means no cache);
`MDRUN_TRUSTED_KEYS` (keys separated by spaces or commas) adds to the file's keys. The file is
the nearest `pyproject.toml` with a `[tool.mdrun]` table, from the current folder upwards.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mdrun.core.signing import PublicKey, parse_public_keys
from mdrun.errors import ConfigError, Location

CACHE_ENVIRONMENT_VARIABLE = "MDRUN_CACHE"
TRUSTED_KEYS_ENVIRONMENT_VARIABLE = "MDRUN_TRUSTED_KEYS"
PROJECT_FILE = "pyproject.toml"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """The remote cache a command uses, if any, and the keys it trusts."""

    url: str | None
    """The cache's fsspec URL (a folder is given as an absolute path); None: no cache."""
    trusted_keys: tuple[PublicKey, ...] = ()
    """Keys whose signatures let a snapshot from the cache be loaded."""
    source: str = ""
    """Where the URL was set, for messages (`--cache`, `$MDRUN_CACHE`, a pyproject.toml)."""


def project_settings(start: Path) -> tuple[dict[str, object], Path | None]:
    """The `[tool.mdrun]` table of the nearest pyproject.toml that has one, and that file."""
    for folder in [start, *start.parents]:
        path = folder / PROJECT_FILE
        if not path.is_file():
            continue
        try:
            loaded = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"cannot read it: {err}", Location(str(path))) from None
        tool = loaded.get("tool")
        table = tool.get("mdrun") if isinstance(tool, dict) else None
        if isinstance(table, dict):
            return table, path
    return {}, None


def as_url(value: str, relative_to: Path) -> str:
    """A URL as given, or a folder made absolute (fsspec reads a bare path as a local one)."""
    if _URL.match(value):
        return value
    return os.path.abspath(relative_to / Path(value).expanduser())


def cache_settings(option: str | None = None, start: Path | None = None) -> CacheSettings:
    """The cache settings in force: `option` is `--cache` (None when not given)."""
    table, path = project_settings((start or Path.cwd()).absolute())
    location = Location(str(path)) if path is not None else None
    keys = _keys_of(table.get("trusted-keys", []), location)
    environment_keys = re.split(r"[\s,]+", os.environ.get(TRUSTED_KEYS_ENVIRONMENT_VARIABLE, ""))
    try:
        keys += parse_public_keys(environment_keys)
    except ConfigError as err:
        raise ConfigError(f"${TRUSTED_KEYS_ENVIRONMENT_VARIABLE}: {err.message}") from None
    trusted = tuple(dict.fromkeys(keys))
    if option is not None:
        return CacheSettings(as_url(option, Path.cwd()) if option else None, trusted, "--cache")
    environment = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if environment is not None:
        url = as_url(environment, Path.cwd()) if environment else None
        return CacheSettings(url, trusted, f"${CACHE_ENVIRONMENT_VARIABLE}")
    configured = table.get("cache")
    if configured is None or path is None:
        return CacheSettings(None, trusted)
    if not isinstance(configured, str):
        raise ConfigError("[tool.mdrun] cache: expected a URL or a folder", location)
    url = as_url(configured, path.parent) if configured else None
    return CacheSettings(url, trusted, str(path))


def _keys_of(value: object, location: Location | None) -> list[PublicKey]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError("[tool.mdrun] trusted-keys: expected a list of public keys", location)
    try:
        return parse_public_keys(value)
    except ConfigError as err:
        raise ConfigError(f"[tool.mdrun] trusted-keys: {err.message}", location) from None
