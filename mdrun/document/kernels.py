"""Which Jupyter kernel runs a block: from its language and optional `kernel=` name to a command.

Starting and talking to the kernel is `mdrun.document.kernel`'s job; this module only decides.
jupyter_client is imported inside the functions that need installed kernelspecs, so that
importing this module stays cheap.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mdrun.errors import KernelNotFound

PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "ipython"})
"""Block languages that mean Python; without `kernel=` they run in mdrun's own interpreter."""

DEFAULT_PYTHON_KERNEL = "mdrun-python"
"""The name of the kernel that runs Python in the environment mdrun itself runs in."""

_PYTHON_COMMANDS = frozenset(
    {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
)

INSTALL_HINT = (
    "install a Jupyter kernel for it (https://github.com/jupyter/jupyter/wiki/Jupyter-kernels) "
    "and check that `jupyter kernelspec list` shows it"
)


@dataclass(frozen=True, slots=True)
class KernelChoice:
    """A kernel that can be started: what mdrun records about it and how to launch it."""

    name: str
    """The kernelspec name, or `DEFAULT_PYTHON_KERNEL` for mdrun's own interpreter."""
    language: str
    """The kernel's language as its kernelspec declares it (`python`, `R`...)."""
    argv: tuple[str, ...]
    """The command that starts the kernel; `{connection_file}` is filled in at start."""
    display: str
    """A human-readable name for messages."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment variables from the kernelspec."""
    interrupt_mode: Literal["signal", "message"] = "signal"
    """How the kernel is interrupted: SIGINT, or an `interrupt_request` message."""
    resource_dir: str = ""
    """The kernelspec's folder, which `{resource_dir}` in `argv` names."""

    def known_language_info(self) -> dict[str, str] | None:
        """The language name and version, when known without starting the kernel.

        For the default Python kernel it is mdrun's own interpreter, so a planner can put the
        version in a cache key without starting a kernel. None for other kernels.
        """
        if self.name != DEFAULT_PYTHON_KERNEL:
            return None
        return {"name": "python", "version": python_version()}


SHELL_LANGUAGES = frozenset({"bash", "sh", "zsh"})
"""Kernels whose shell reads the user's start-up files (bash_kernel sources ~/.bashrc)."""


def environment_bin() -> str:
    """The folder of mdrun's interpreter (its virtual environment's `bin`), not resolved: a
    virtual environment's `python` is a link to the system's."""
    return str(Path(sys.executable).parent)


def kernel_environment(choice: KernelChoice, base: Mapping[str, str]) -> dict[str, str]:
    """The environment a kernel starts with: `base`, the kernelspec's variables and, for
    kernels other than mdrun's own Python, mdrun's environment first on PATH, so that `python`,
    `pip` and the tools installed beside mdrun are the ones a block finds."""
    environment = {**base, **dict(choice.env)}
    if choice.name != DEFAULT_PYTHON_KERNEL and choice.language.lower() != "python":
        path = environment.get("PATH")
        environment["PATH"] = environment_bin() + (os.pathsep + path if path else "")
        if sys.prefix != sys.base_prefix:
            environment["VIRTUAL_ENV"] = sys.prefix
    return environment


def startup_code(choice: KernelChoice) -> str | None:
    """Code a fresh kernel runs first, or None: a shell puts mdrun's environment first on PATH
    again, after its start-up files may have put other folders before it."""
    if choice.language.lower() not in SHELL_LANGUAGES:
        return None
    return f'export PATH={shlex.quote(environment_bin())}:"$PATH"'


def python_version() -> str:
    """`3.11.7`: what `platform.python_version()` says, without importing `platform`."""
    return ".".join(str(part) for part in sys.version_info[:3])


def resolve_kernel(language: str, kernel_name: str | None) -> KernelChoice:
    """Choose the kernel for a block written in `language`, honouring an explicit `kernel=`."""
    if kernel_name is not None:
        return _installed_kernel(kernel_name)
    if language.lower() in PYTHON_LANGUAGES:
        return default_python_kernel()
    return _kernel_for_language(language)


IPYKERNEL_SETTINGS = ("--HistoryManager.enabled=False", "--Kernel._execute_sleep=0")
"""How mdrun's own Python kernel runs blocks faster than a notebook's, with nothing a block
sees changed. IPython's history database (an SQLite write per block, on the shell's thread)
gives way to its in-memory history (`In`, `%history` still work); ipykernel's pause of half a
millisecond or more before each reply, for clients that take the reply as the end of the
outputs, is not needed: mdrun waits for the kernel's idle status, which follows them. On the
shared 2-core machine (load 2.5-3), a trivial block's request took 16-21 ms before, 12-16 after."""


def default_python_kernel() -> KernelChoice:
    """ipykernel in the interpreter running mdrun: no kernelspec needs to be installed."""
    return KernelChoice(
        name=DEFAULT_PYTHON_KERNEL,
        language="python",
        argv=(
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            *IPYKERNEL_SETTINGS,
        ),
        display=f"Python {python_version()} ({sys.executable})",
    )


def _installed_kernel(kernel_name: str) -> KernelChoice:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec(kernel_name)
    except NoSuchKernel as err:
        installed = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        message = (
            f"no Jupyter kernel named {kernel_name!r} is installed (installed: {installed}); "
            f"{INSTALL_HINT}"
        )
        raise KernelNotFound(message) from err
    return _choice_from_spec(
        kernel_name,
        language=str(spec.language),
        argv=[str(arg) for arg in spec.argv],
        display=str(spec.display_name),
        env={str(key): str(value) for key, value in dict(spec.env).items()},
        interrupt_mode=str(spec.interrupt_mode),
        resource_dir=str(spec.resource_dir),
    )


def _kernel_for_language(language: str) -> KernelChoice:
    """The installed kernelspec for `language`: the one named like it, else the first by name."""
    from jupyter_client.kernelspec import KernelSpecManager

    wanted = language.lower()
    specs = KernelSpecManager().get_all_specs()
    matching = sorted(
        name
        for name, entry in specs.items()
        if str(entry["spec"].get("language", "")).lower() == wanted
    )
    if not matching:
        message = f"no Jupyter kernel for language {language!r} is installed; {INSTALL_HINT}"
        raise KernelNotFound(message)
    name = wanted if wanted in matching else matching[0]
    spec = specs[name]["spec"]
    return _choice_from_spec(
        name,
        language=str(spec["language"]),
        argv=[str(arg) for arg in spec["argv"]],
        display=str(spec.get("display_name", name)),
        env={str(key): str(value) for key, value in dict(spec.get("env") or {}).items()},
        interrupt_mode=str(spec.get("interrupt_mode", "signal")),
        resource_dir=str(specs[name]["resource_dir"]),
    )


def _choice_from_spec(
    name: str,
    *,
    language: str,
    argv: list[str],
    display: str,
    env: dict[str, str],
    interrupt_mode: str,
    resource_dir: str,
) -> KernelChoice:
    if argv and argv[0] in _PYTHON_COMMANDS:
        # As jupyter_client does: a kernelspec's bare `python` means the running interpreter.
        argv = [sys.executable, *argv[1:]]
    return KernelChoice(
        name=name,
        language=language,
        argv=tuple(argv),
        display=display,
        env=tuple(sorted(env.items())),
        interrupt_mode="message" if interrupt_mode == "message" else "signal",
        resource_dir=resource_dir,
    )
