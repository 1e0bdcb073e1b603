"""File helpers for realizers: trees copied out of the store are read-only, `dirrw` fixes that.

The store itself makes and removes read-only trees (`store.make_read_only`, `remove_tree`);
this module only serves code that copies published files and wants to change the copy.
"""

from __future__ import annotations

import os
from pathlib import Path

from mdrun.core.store import make_writable

__all__ = ["dirrw"]


def dirrw(path: str | os.PathLike[str]) -> None:
    """Give the owner write access to a copied tree, so a build can work inside the copy.

    `shutil.copytree` keeps the read-only modes of a published realization; configure scripts
    and `make` then fail to write. Symlinks are left alone (their targets are not ours).
    """
    make_writable(Path(path))
