"""Code that runs inside a fresh Python kernel: move it to another folder as if it had been
started there, so that a spare kernel the server started in one folder can serve a run in
another (a kernel's start is then off the critical path of a document's first run too).

A kernel's start does not depend on its folder otherwise: IPython 8 reads no configuration from
it, and ipykernel takes the folder off `sys.path` while it loads. What does is undone here: the
working directory, IPython's directory history (`_dh`) and the folder `kernel_modules` noted as
the initial one. Where that might not be all, the kernel refuses and says why (mdrun then starts
a kernel in the folder): a module was loaded from the old folder, a file or package in the new
one has the name of a module the kernel loaded (a kernel started there could have loaded that
instead), or either folder has an IPython configuration file (older IPythons read one there).

Sent as the source of an expression (`expression`) that mdrun evaluates in a request with no
code, so that no execution is counted (see `kernel_state`) and no name is bound in the session.
Standard library only.
"""

from __future__ import annotations

import os
import sys
from typing import Any

CONFIGURATION_FILES = frozenset(
    {"ipython_config.py", "ipython_kernel_config.py", "ipython_config.json",
     "ipython_kernel_config.json"}
)  # fmt: skip
"""IPython's configuration files, which IPython before 8 also read from the working folder."""
MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


def move_to(folder: str) -> str:
    """Make `folder` the kernel's folder, as if it had started there; "" when it is, else why
    it cannot be (nothing is changed then)."""
    old = os.getcwd()
    reason = obstacle(old, folder, sys.modules, os.listdir(old), os.listdir(folder))
    if reason:
        return reason
    os.chdir(folder)
    noted = sys.modules.get("_mdrun_modules")
    if noted is not None:
        noted._initial_folder[:] = [os.getcwd()]
    history = _directory_history()
    if history:
        history[:] = [type(history[0])(os.getcwd())]
    return ""


def obstacle(
    old: str, new: str, modules: dict[str, Any], old_names: list[str], new_names: list[str]
) -> str:
    """Why a kernel started in `old`, holding `modules`, may differ from one started in `new`
    ("" when it may not); `old_names` and `new_names` are the folders' entries."""
    for names, folder in ((old_names, old), (new_names, new)):
        found = sorted(CONFIGURATION_FILES.intersection(names))
        if found:
            return f"{os.path.join(folder, found[0])} may configure a kernel started there"
    prefix = os.path.join(old, "")
    for name, module in list(modules.items()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and os.path.abspath(path).startswith(prefix):
            return f"the module {name} was loaded from {old}"
    loaded = {name.partition(".")[0] for name in modules}
    for entry in new_names:
        name = entry
        for suffix in MODULE_SUFFIXES:
            if entry.endswith(suffix):
                name = entry.split(".")[0]
                break
        if name in loaded:
            return f"{os.path.join(new, entry)} has the name of a module the kernel loaded"
    return ""


def _directory_history() -> list[Any] | None:
    """IPython's `_dh` (the folders the session was in), when this is an IPython kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    history = None if shell is None else shell.user_ns.get("_dh")
    return history if isinstance(history, list) else None


def expression(folder: str) -> str:
    """An expression that moves the kernel to `folder` and evaluates to `move_to`'s answer,
    with this module's source in it (the kernel need not have mdrun)."""
    with open(__file__, encoding="utf-8") as stream:
        source = stream.read()
    return (
        "(lambda namespace: (exec(" + repr(source) + ", namespace), "
        "namespace['move_to'](" + repr(folder) + "))[1])({'__name__': '_mdrun_folder'})"
    )
