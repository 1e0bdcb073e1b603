"""Fetching a pinned sdist with pip, checking its sha256, and unpacking it safely.

pip is PyPI's own client, so the corpus names no host. An archive is untrusted until its digest
matches the manifest; it is unpacked with tarfile's `data` filter, which refuses absolute paths,
`..`, links out of the folder and device files.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .manifest import Package


class SdistError(Exception):
    """An sdist could not be fetched, did not match its digest, or could not be unpacked."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, package: Package) -> None:
    """Raise unless the file's sha256 is the one the manifest pins."""
    actual = sha256_of(path)
    if actual != package.sha256:
        raise SdistError(f"{package.sdist}: sha256 is {actual}, the manifest pins {package.sha256}")


def download(package: Package, python: Path, cache: Path) -> Path:
    """The verified archive, from the cache folder or else from PyPI through `pip download`."""
    cached = cache / package.sdist
    if cached.is_file():
        try:
            verify(cached, package)
            return cached
        except SdistError:
            cached.unlink()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as folder:
        command = [
            str(python), "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", package.requirement, "--dest", folder,
        ]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        fetched = Path(folder) / package.sdist
        if completed.returncode != 0 or not fetched.is_file():
            raise SdistError(
                f"pip download {package.requirement} did not give {package.sdist}:\n"
                + completed.stderr[-2000:]
            )
        verify(fetched, package)
        fetched.replace(cached)
    return cached


def extract(archive: Path, destination: Path) -> Path:
    """Unpack into a fresh `destination`; return the archive's single top folder."""
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as bundle:
            bundle.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise SdistError(f"{archive.name}: cannot unpack: {error}") from error
    tops = list(destination.iterdir())
    if len(tops) != 1 or not tops[0].is_dir():
        raise SdistError(f"{archive.name}: expected one top folder, found {len(tops)} entries")
    return tops[0]
