"""A remote cache: the store backend over any fsspec URL (a folder, memory, S3, GCS, HTTP).

Layout under the URL, content-addressed like a Nix binary cache:

    mdrun-cache                                   "mdrun-cache 1"
    blobs/<sha256>                                every entry's bytes (a link: its target text)
    derivations/<dhash>-<name>/config.json        the canonical config
    derivations/<dhash>-<name>/<rhash>.build      the build record
    derivations/<dhash>-<name>/<rhash>.signatures one `<key id> <signature>` line per signer
    derivations/<dhash>-<name>/<rhash>.manifest   the manifest: written last, it publishes
    derivations/<dhash>-<name>/index              the published rhashes, for servers that list
                                                  no folders (plain HTTP)

Every object is written whole under its final name (object stores make a single PUT atomic) or,
on a file system, under a temporary name then renamed; blobs and build records go first and the
manifest last, so a reader never lists a half-pushed realization. Nothing read here is trusted:
`substitute` checks it all against the references. This module knows nothing of documents.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mdrun.core.integrity import BUILD_FILE, MANIFEST_FILE, MANIFEST_MAX_BYTES, manifest_lines
from mdrun.core.refs import DRef, RRef, make_rref, parse_dref, parse_rref
from mdrun.errors import StoreError

CACHE_VERSION_FILE = "mdrun-cache"
CACHE_VERSION_TEXT = b"mdrun-cache 1\n"
READ_ONLY_PROTOCOLS = frozenset({"http", "https"})
"""Protocols that can only be read (a static server), whatever the user asks."""
_RENAMING_PROTOCOLS = frozenset({"file", "local"})
"""Where an object is written under a temporary name and renamed into place."""
_CHUNK = 1 << 20


class FsspecBackend:
    """One remote cache tier, reached through fsspec (`s3://bucket/prefix`, a folder...)."""

    def __init__(
        self,
        url: str,
        *,
        writable: bool = True,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        import fsspec

        self.url = url.rstrip("/") or url
        try:
            # A fresh file system object: one cached by fsspec may hold stale credentials, an
            # old endpoint, or listings made before another process pushed.
            options = {"skip_instance_cache": True, **dict(storage_options or {})}
            self.fs, root = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as err:
            raise StoreError(f"cannot open the cache {url}: {err}") from err
        self.root = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self._renames = bool(_RENAMING_PROTOCOLS & set(protocols))
        self._writable = writable and not READ_ONLY_PROTOCOLS & set(protocols)
        self._lists_folders = not READ_ONLY_PROTOCOLS & set(protocols)
        self._manifests: dict[RRef, bytes] = {}
        self._lock = threading.Lock()
        self.downloads: list[tuple[RRef, str, int]] = []
        """Each entry read from the cache by this object: realization, path, bytes (for
        measurement: what a run downloaded)."""
        self.bytes_of_records = 0
        """Bytes of manifests, configs, build records, signatures and indexes read."""

    # -- the StoreBackend protocol ------------------------------------------------------------

    @property
    def location(self) -> str:
        """The URL, for messages."""
        return self.url

    @property
    def writable(self) -> bool:
        """False over HTTP, or when opened read-only."""
        return self._writable

    def config_bytes(self, dref: DRef) -> bytes | None:
        """The stored canonical config, unchecked; None when absent."""
        return self._read_small(f"{self._derivation(dref)}/config.json", MANIFEST_MAX_BYTES)

    def realizations_of(self, dref: DRef) -> list[RRef]:
        """The realizations whose manifest is published, sorted."""
        derivation_hash, name = parse_dref(dref)
        return sorted(
            make_rref(realization_hash, derivation_hash, name)
            for realization_hash in self._published_hashes(dref)
        )

    def manifest_bytes(self, rref: RRef) -> bytes | None:
        """A realization's manifest, unchecked; None when absent."""
        known = self._manifests.get(rref)
        if known is not None:
            return known
        data = self._read_small(self._realization(rref) + ".manifest", MANIFEST_MAX_BYTES)
        if data is not None:
            with self._lock:
                self._manifests[rref] = data
        return data

    def build_record_bytes(self, rref: RRef) -> bytes | None:
        """A realization's build record, unchecked; None when absent."""
        return self._read_small(self._realization(rref) + ".build", 1 << 16)

    def read_entry(self, rref: RRef, path: str) -> bytes:
        """The bytes of one entry (KeyError when the cache does not hold it)."""
        blob = self._blob(self._entry_digest(rref, path))
        try:
            data: bytes = self.fs.cat_file(blob)
        except FileNotFoundError:
            raise KeyError(f"{self.url}: {rref}: {path}") from None
        except OSError as err:
            raise self._error("cannot read", blob, err) from err
        self._count(rref, path, len(data))
        return data

    def copy_entry(self, rref: RRef, path: str, destination: Path) -> None:
        """Stream one file entry to `destination` (KeyError when the cache does not hold it)."""
        blob = self._blob(self._entry_digest(rref, path))
        copied = 0
        try:
            with self.fs.open(blob, "rb") as source, destination.open("wb") as target:
                while chunk := source.read(_CHUNK):
                    target.write(chunk)
                    copied += len(chunk)
        except FileNotFoundError:
            raise KeyError(f"{self.url}: {rref}: {path}") from None
        except OSError as err:
            raise self._error("cannot read", blob, err) from err
        finally:
            self._count(rref, path, copied)

    def put_realization(self, dref: DRef, config: bytes, rref: RRef, folder: Path) -> None:
        """Upload a realization: its blobs, config and build record, then its manifest."""
        self._require_writable()
        manifest_path = self._realization(rref) + ".manifest"
        manifest = (folder / MANIFEST_FILE).read_bytes()
        if self._read_small(manifest_path, MANIFEST_MAX_BYTES) == manifest:
            return
        self._write_once(self._join(CACHE_VERSION_FILE), CACHE_VERSION_TEXT)
        for kind, path, digest in _entries(manifest):
            self._put_entry(rref, folder, kind, path, digest)
        config_path = f"{self._derivation(dref)}/config.json"
        if self._read_small(config_path, MANIFEST_MAX_BYTES) != config:
            self._write(config_path, config)
        build = folder / BUILD_FILE
        if build.is_file() and not build.is_symlink():
            self._write(self._realization(rref) + ".build", build.read_bytes())
        self._write(manifest_path, manifest)
        with self._lock:
            self._manifests[rref] = manifest
        self._add_to_index(dref, parse_rref(rref)[0])

    def remove_realization(self, rref: RRef) -> None:
        """Unpublish a realization (its manifest first); blobs stay, others may share them."""
        self._require_writable()
        base = self._realization(rref)
        for suffix in (".manifest", ".signatures", ".build"):
            self._remove(base + suffix)
        with self._lock:
            self._manifests.pop(rref, None)

    # -- signatures (see `signing`) -----------------------------------------------------------

    def signatures_bytes(self, rref: RRef) -> bytes | None:
        """The signature lines stored beside a realization's manifest, unchecked."""
        return self._read_small(self._realization(rref) + ".signatures", 1 << 16)

    def add_signature(self, rref: RRef, line: str) -> None:
        """Store one more signature line (kept once); write it before the manifest to have a
        realization published signed."""
        self._require_writable()
        path = self._realization(rref) + ".signatures"
        present = (self._read_small(path, 1 << 16) or b"").decode("utf-8", "replace")
        lines = [kept for kept in present.splitlines() if kept.strip()]
        if line.strip() not in lines:
            self._write(path, "".join(f"{kept}\n" for kept in [*lines, line.strip()]).encode())

    def has_blob(self, digest: str) -> bool:
        """Whether the cache holds the bytes of this digest."""
        return bool(self._exists(self._blob(digest)))

    # -- paths and I/O ------------------------------------------------------------------------

    def _join(self, relative: str) -> str:
        return f"{self.root}/{relative}" if self.root else relative

    def _derivation(self, dref: DRef) -> str:
        derivation_hash, name = parse_dref(dref)
        return self._join(f"derivations/{derivation_hash}-{name}")

    def _realization(self, rref: RRef) -> str:
        realization_hash, derivation_hash, name = parse_rref(rref)
        return self._join(f"derivations/{derivation_hash}-{name}/{realization_hash}")

    def _blob(self, digest: str) -> str:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise KeyError(f"not a SHA-256 digest: {digest!r}")
        return self._join(f"blobs/{digest}")

    def _entry_digest(self, rref: RRef, path: str) -> str:
        manifest = self.manifest_bytes(rref)
        if manifest is None:
            raise KeyError(f"{self.url}: {rref} is not in the cache")
        for kind, entry, digest in _entries(manifest):
            if entry == path and kind in ("file", "exec", "link"):
                return digest
        raise KeyError(f"{self.url}: {rref}: its manifest lists no {path!r}")

    def _published_hashes(self, dref: DRef) -> set[str]:
        folder = self._derivation(dref)
        if not self._lists_folders:
            index = self._read_small(f"{folder}/index", MANIFEST_MAX_BYTES) or b""
            return {line for line in index.decode("ascii", "replace").split() if _is_hash(line)}
        try:
            self.fs.invalidate_cache(folder)
            names = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return set()
        except OSError as err:
            raise self._error("cannot list", folder, err) from err
        found = set()
        for name in names:
            base = str(name).rstrip("/").rsplit("/", 1)[-1]
            stem, dot, suffix = base.partition(".")
            if dot and suffix == "manifest" and _is_hash(stem):
                found.add(stem)
        return found

    def _add_to_index(self, dref: DRef, realization_hash: str) -> None:
        """Record a published realization in its derivation's index (for HTTP readers). Two
        pushers of one derivation at once may drop each other's line: such a realization is
        then missed by HTTP readers only, until pushed again."""
        path = f"{self._derivation(dref)}/index"
        present = (self._read_small(path, MANIFEST_MAX_BYTES) or b"").decode("ascii", "replace")
        hashes = {line for line in present.split() if _is_hash(line)}
        if realization_hash not in hashes:
            text = "".join(f"{value}\n" for value in sorted(hashes | {realization_hash}))
            self._write(path, text.encode("ascii"))

    def _put_entry(self, rref: RRef, folder: Path, kind: str, path: str, digest: str) -> None:
        if kind not in ("file", "exec", "link"):
            return
        blob = self._blob(digest)
        if self._exists(blob):
            return
        local = folder / path
        if kind == "link":
            self._write(blob, os.readlink(local).encode("utf-8", "surrogateescape"))
        elif local.is_file():
            self._write_file(blob, local)
        else:
            raise StoreError(
                f"cannot push {rref} to {self.url}: its file {path} is not in the local store "
                "(it was left on the cache it came from) and the cache does not hold it"
            )

    def _read_small(self, path: str, limit: int) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self._error("cannot read", path, err) from err
        if len(data) > limit:
            raise StoreError(f"{self.url}: {path} is larger than such a record can be")
        with self._lock:
            self.bytes_of_records += len(data)
        return data

    def _exists(self, path: str) -> bool:
        try:
            return bool(self.fs.exists(path))
        except OSError as err:
            raise self._error("cannot reach", path, err) from err

    def _write_once(self, path: str, data: bytes) -> None:
        if not self._exists(path):
            self._write(path, data)

    def _write(self, path: str, data: bytes) -> None:
        """Write a whole object: under a temporary name then renamed on a file system, in one
        PUT (atomic) on an object store."""
        try:
            if self._renames:
                with self._temporary(path) as temporary:
                    self.fs.pipe_file(temporary, data)
                    self.fs.mv(temporary, path)
            else:
                self.fs.pipe_file(path, data)
        except OSError as err:
            raise self._error("cannot write", path, err) from err

    def _write_file(self, path: str, local: Path) -> None:
        """Upload a file without holding it in memory (a multipart upload on S3 is published
        only when complete)."""
        try:
            if self._renames:
                with self._temporary(path) as temporary:
                    self.fs.put_file(str(local), temporary)
                    self.fs.mv(temporary, path)
            else:
                self.fs.put_file(str(local), path)
        except OSError as err:
            raise self._error("cannot write", path, err) from err

    def _temporary(self, path: str) -> _Temporary:
        folder, _, name = path.rpartition("/")
        self.fs.makedirs(folder, exist_ok=True)
        return _Temporary(self.fs, f"{folder}/.{name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")

    def _remove(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise self._error("cannot remove", path, err) from err

    def _require_writable(self) -> None:
        if not self._writable:
            raise StoreError(f"the cache {self.url} is read-only: nothing can be pushed to it")

    @property
    def bytes_downloaded(self) -> int:
        """Bytes of entries read from the cache by this object."""
        return sum(size for _, _, size in self.downloads)

    def _count(self, rref: RRef, path: str, size: int) -> None:
        with self._lock:
            self.downloads.append((rref, path, size))

    def _error(self, action: str, path: str, err: OSError) -> StoreError:
        return StoreError(f"{self.url}: {action} {path}: {err.strerror or err}")

    def __repr__(self) -> str:
        return f"FsspecBackend({self.url!r})"


class _Temporary:
    """A temporary object's name, removed on the way out if it is still there (a failure)."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = path

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *_exc: object) -> None:
        try:
            if self.fs.exists(self.path):
                self.fs.rm_file(self.path)
        except OSError:
            pass


def _entries(manifest: bytes) -> Iterator[tuple[str, str, str]]:
    """(kind, path, digest) of each manifest line (an unreadable manifest lists nothing)."""
    try:
        lines = manifest_lines(manifest)
    except ValueError:
        return
    for line in lines:
        kind, _, rest = line.partition(" ")
        path, _, digest = rest.rpartition(" ")
        yield kind, path, digest


def _is_hash(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)
