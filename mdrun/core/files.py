"""Read-only trees: the store publishes realizations read-only, and removes them again.

`dirrw` serves realizers that copy published files and want to change the copy.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["dirrw", "make_read_only", "make_writable", "remove_tree"]


def make_read_only(root: Path) -> None:
    """Clear every write bit under `root` (files and folders), keeping read and exec bits."""
    for folder, subfolders, files in os.walk(root, topdown=False):
        for name in files + subfolders:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o222)
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) & ~0o222)


def make_writable(root: Path) -> None:
    """Give the owner write access again (needed before deleting a read-only tree)."""
    if not os.path.lexists(root):
        return
    if not root.is_dir() or root.is_symlink():
        os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) | 0o200)
        return
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) | 0o700)
    for folder, subfolders, files in os.walk(root):
        for name in subfolders + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode):
                extra = 0o700 if stat.S_ISDIR(info.st_mode) else 0o200
                os.chmod(path, stat.S_IMODE(info.st_mode) | extra)


def remove_tree(path: Path) -> None:
    """Delete a (possibly read-only) file or folder; a missing path is fine."""
    if not os.path.lexists(path):
        return
    make_writable(path)
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()



def dirrw(path: str | os.PathLike[str]) -> None:
    """Give the owner write access to a copied tree, so a build can work inside the copy.

    `shutil.copytree` keeps the read-only modes of a published realization; configure scripts
    and `make` then fail to write. Symlinks are left alone (their targets are not ours).
    """
    make_writable(Path(path))
