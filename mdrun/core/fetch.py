"""Fetch stages: `fetchurl` (file://, http://, https://) and `fetchlocal`, checked by sha256.

The download streams into the build output through a temporary file while it is hashed; a
wrong hash fails the build, so nothing is stored. Archives are unpacked in pure Python
(tarfile, zipfile), refusing members that would land outside the realization. The realizer
reads everything from the config, so `redefine` can change a url and get a working stage.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from mdrun.core.build import Build, build_config, build_outpath, build_wrapper
from mdrun.core.config import SELFREF, Config
from mdrun.core.files import replaced_atomically, temporary_beside
from mdrun.core.integrity import UNHASHED_NAMES
from mdrun.core.jsonvalue import JSONObject
from mdrun.core.matchers import match_only
from mdrun.core.refs import DRef, make_name
from mdrun.core.registry import Registry, mkdrv
from mdrun.core.store import RESERVED_NAMES
from mdrun.errors import ConfigError, FetchError

__all__ = ["fetchlocal", "fetchurl", "unpack_archive"]

URL_SCHEMES = frozenset({"file", "http", "https"})
MODE_WORDS = frozenset({"unpack", "remove", "as-is"})
DOWNLOAD_TIMEOUT = 60.0
"""Seconds without progress before a download is abandoned."""
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")

ArchiveKind = Literal["tar", "zip"]
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


# -- configs ----------------------------------------------------------------------------------


def _check_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or _SHA256.fullmatch(sha256.lower()) is None:
        raise ConfigError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return sha256.lower()


def _parse_mode(mode: str) -> frozenset[str]:
    words = frozenset(word.strip() for word in mode.split(","))
    unknown = words - MODE_WORDS
    if (
        unknown
        or ("as-is" in words) == ("unpack" in words)
        or ("remove" in words and "unpack" not in words)
    ):
        raise ConfigError(f"fetch mode {mode!r} is not one of 'unpack,remove', 'unpack' or 'as-is'")
    return words


def _check_filename(filename: str, source: str) -> str:
    if not filename or filename in (".", "..") or "/" in filename or "\\" in filename:
        raise ConfigError(
            f"cannot name the downloaded file of {source!r} ({filename!r}); pass filename="
        )
    if filename in UNHASHED_NAMES or filename in RESERVED_NAMES:
        raise ConfigError(f"file name {filename!r} is reserved: the store writes that file")
    return filename


def _fetch_config(
    name: str, source: dict[str, str], sha256: str, filename: str, mode: str
) -> Config:
    data: JSONObject = {"name": make_name(name), **source}
    data["sha256"] = _check_sha256(sha256)
    data["mode"] = mode
    data["filename"] = filename
    if "as-is" in _parse_mode(mode):
        data["out"] = [SELFREF, filename]
    return Config(data)


def fetchurl(
    r: Registry | None,
    *,
    url: str,
    sha256: str,
    name: str = "fetchurl",
    filename: str | None = None,
    mode: str = "unpack,remove",
) -> DRef:
    """A stage holding the file at `url` (unpacked by default), checked against `sha256`."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in URL_SCHEMES:
        raise ConfigError(f"fetchurl: unsupported url {url!r} (use file://, http:// or https://)")
    default_name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    chosen = _check_filename(filename if filename is not None else default_name, url)
    config = _fetch_config(name, {"url": url}, sha256, chosen, mode)
    return mkdrv(r, config, match_only(), build_wrapper(_realize_fetch))


def fetchlocal(
    r: Registry | None,
    *,
    path: str | os.PathLike[str],
    sha256: str,
    name: str = "fetchlocal",
    filename: str | None = None,
    mode: str = "unpack,remove",
) -> DRef:
    """A stage holding a copy of a local file (unpacked by default), checked against `sha256`."""
    absolute = os.path.abspath(os.fspath(path))
    chosen = _check_filename(filename if filename is not None else Path(absolute).name, absolute)
    config = _fetch_config(name, {"path": absolute}, sha256, chosen, mode)
    return mkdrv(r, config, match_only(), build_wrapper(_realize_fetch))


# -- the realizer -----------------------------------------------------------------------------


@contextmanager
def _open_source(config: JSONObject, dref: DRef) -> Iterator[tuple[str, BinaryIO]]:
    """The stream to download from, and how to name it in errors."""
    url = config.get("url")
    if isinstance(url, str):
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "mdrun"})
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
                yield url, response
        except (urllib.error.URLError, OSError) as err:
            raise FetchError(f"{dref}: cannot download {url}: {err}", dref, err) from err
        return
    path = str(config["path"])
    try:
        with open(path, "rb") as stream:
            yield path, stream
    except OSError as err:
        raise FetchError(f"{dref}: cannot read {path}: {err.strerror}", dref, err) from err


def _realize_fetch(build: Build) -> None:
    """Download, check the hash, then keep the file or unpack it."""
    config = build_config(build).val
    dref = build.dref
    output = build_outpath(build).path
    filename = str(config["filename"])
    expected = str(config["sha256"])
    mode = _parse_mode(str(config["mode"]))
    # The download is kept under its name only once checked (and unpacked, if asked).
    keep = replaced_atomically if "remove" not in mode else temporary_beside
    with keep(output / filename) as temporary:
        digest = hashlib.sha256()
        with temporary.open("xb") as target, _open_source(config, dref) as (source_name, source):
            try:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    target.write(chunk)
            except (OSError, http.client.HTTPException) as err:
                message = f"{dref}: download of {source_name} failed: {err}"
                raise FetchError(message, dref, err) from err
        actual = digest.hexdigest()
        if actual != expected:
            raise FetchError(
                f"{dref}: sha256 mismatch for {source_name}: expected {expected}, got {actual}",
                dref,
            )
        os.chmod(temporary, 0o644)
        if "unpack" in mode:
            unpack_archive(temporary, output, archive_name=filename, dref=dref)


# -- unpacking --------------------------------------------------------------------------------


def archive_kind(path: Path, archive_name: str) -> ArchiveKind | None:
    """What kind of archive a file is: by its name's suffix, else by its content."""
    lowered = archive_name.lower()
    if lowered.endswith(_TAR_SUFFIXES):
        return "tar"
    if lowered.endswith(".zip"):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    return None


def _check_member_name(member_name: str, archive_name: str, dref: DRef) -> None:
    """Refuse names that tarfile's data filter would silently rewrite, and all `..`."""
    parts = PurePosixPath(member_name.replace("\\", "/")).parts
    if member_name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", member_name) or ".." in parts:
        raise FetchError(
            f"{dref}: refusing to unpack {archive_name}: member {member_name!r} would be "
            "written outside the realization",
            dref,
        )


def unpack_archive(path: Path, destination: Path, archive_name: str, dref: DRef) -> None:
    """Unpack a tar (plain, gz, bz2, xz) or zip archive into `destination`, safely."""
    kind = archive_kind(path, archive_name)
    try:
        if kind == "tar":
            with tarfile.open(path, "r:*") as archive:
                for member in archive.getmembers():
                    _check_member_name(member.name, archive_name, dref)
                archive.extractall(destination, filter="data")
        elif kind == "zip":
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    _check_member_name(info.filename, archive_name, dref)
                for info in archive.infolist():
                    extracted = Path(archive.extract(info, destination))
                    unix_mode = (info.external_attr >> 16) & 0o777
                    if not info.is_dir() and unix_mode & 0o100:
                        extracted.chmod(extracted.stat().st_mode | 0o111)
        else:
            raise FetchError(
                f"{dref}: {archive_name} is not a tar or zip archive; use mode='as-is'", dref
            )
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise FetchError(f"{dref}: cannot unpack {archive_name}: {err}", dref, err) from err
