"""The image files a rendered document links: named by their content, written beside it.

`render` hands each image it meets to an `ImageFiles`; the run that writes the document saves
them first and removes, once the new document is in place, the ones it no longer links.
Rendering the regions is `render`'s job; when the document is written is `pipeline`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path

from mdrun.core.files import replaced_atomically
from mdrun.errors import FileAccessError, Location

STDIO = "-"
IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}
"""The file extension of each image type a region links (others are saved as `.bin`)."""

_IMAGE_NAME = re.compile(r"[0-9a-f]{16}\.(png|jpg|svg)")


class ImageFiles:
    """The images a rendered document links, named by content, kept until `save` writes them
    beside the output document (and removes the ones it no longer links)."""

    def __init__(self, output: str) -> None:
        target = Path.cwd() / "stdout.md" if output == STDIO else Path(output).absolute()
        self.folder = target.parent / f"{target.stem}_files"
        self.link_base = target.parent
        self.images: dict[str, bytes] = {}

    def __call__(self, mime: str, data: bytes) -> str:
        name = f"{hashlib.sha256(data).hexdigest()[:16]}.{IMAGE_EXTENSIONS.get(mime, 'bin')}"
        self.images[name] = data
        return (self.folder / name).relative_to(self.link_base).as_posix()

    def paths(self) -> tuple[str, ...]:
        """The image files the rendered document links."""
        return tuple(str(self.folder / name) for name in sorted(self.images))

    def save(self) -> None:
        """Write the linked images that are missing (before the document that links them)."""
        for name, data in self.images.items():
            path = self.folder / name
            if not path.exists():
                try:
                    self.folder.mkdir(exist_ok=True)
                    with replaced_atomically(path) as temporary:
                        temporary.write_bytes(data)
                except OSError as err:
                    message = f"cannot write an image: {err.strerror}"
                    raise FileAccessError(message, Location(str(self.folder))) from err

    def remove_unlinked(self) -> None:
        """Delete the images of earlier runs that the document no longer links: only once the
        new document is in place, so that a failed write leaves the old one with its images."""
        if not self.folder.is_dir():
            return
        with contextlib.suppress(OSError):  # one left behind is harmless: nothing links it
            for entry in self.folder.iterdir():
                if _IMAGE_NAME.fullmatch(entry.name) and entry.name not in self.images:
                    entry.unlink()
            if not any(self.folder.iterdir()):
                self.folder.rmdir()
