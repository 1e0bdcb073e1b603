"""Code that installs one of mdrun's own modules inside a Python kernel.

The kernel may run another interpreter than mdrun's, so a module is sent as source and executed
there under a private name, rather than imported from mdrun's package."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType


def installer(module: ModuleType, installed_as: str, then: str = "") -> str:
    """Python that makes `module`'s source the kernel module `installed_as`, then runs `then`
    (an expression of that module, such as `install()`), leaving no name behind."""
    source = Path(str(module.__file__)).read_text(encoding="utf-8")
    call = f"__import__({installed_as!r}).{then}\n" if then else ""
    return (
        "def _mdrun_install(source):\n"
        "    import sys, types\n"
        f"    module = types.ModuleType({installed_as!r})\n"
        f"    sys.modules[{installed_as!r}] = module\n"
        f"    exec(compile(source, {'<' + installed_as + '>'!r}, 'exec'), module.__dict__)\n"
        f"_mdrun_install({source!r})\n"
        f"{call}"
        "del _mdrun_install\n"
    )
