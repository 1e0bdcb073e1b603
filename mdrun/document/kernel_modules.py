"""Code that runs inside a Python kernel: the state that modules hold rather than variables.

Sent to the kernel as source with `kernel_state` (standard library only), which asks it, after
each block, for what a snapshot must carry besides the variables: `random`'s and numpy's
generators once a block used them, the working directory and environment variables and
`sys.path` as blocks changed them, and every global of an imported module that a block rebound.
It notes their initial states when the kernel starts and watches the imports that follow.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.abc
import itertools
import operator
import os
import pickle
import sys
import types
from typing import Any

_initial_states: dict[str, bytes] = {}
"""Generator states as the process started them, before any block ran."""
_initial_environment: dict[str, str] = {}
_initial_environment_data: list[dict[Any, Any]] = []
"""The environment as the process holds it (encoded), to see at once that it did not change."""
_initial_folder: list[str] = []
_initial_path: list[str] = []
_module_globals: dict[str, dict[str, int]] = {}
"""For each module imported since the kernel started: its globals' ids right after import."""
_reach_cache: list[Any] = []
"""The modules `_modules_in_reach` found last, with what they depended on."""
_imported_later: set[str] = set()
"""Modules imported after the kernel started."""
_initial_builtins: dict[str, int] = {}
"""The id of each builtin as the kernel started."""
_initial_streams: list[Any] = []
"""`sys.stdout` and `sys.stderr` as the kernel started."""
_initial_digits: list[int] = []
"""`sys.get_int_max_str_digits()` as the kernel started (Python 3.11 and later)."""
PURE_GUARD = "<pure guard>"
"""The name under which `pure_guard`'s reason enters the state's digests (mdrun's
`session_state` reads it under the same name)."""
REBOUND_BY_KERNEL = frozenset(
    {"input", "raw_input", "getpass", "display", "get_ipython", "exit", "quit"}
)
"""Builtins that ipykernel and IPython rebind themselves."""
IPYTHON_HIDDEN = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})
"""IPython's own hidden names that do not start with an underscore."""
GLOBAL_PREFIX = "<global "
KERNEL_MODULES = (
    "IPython",
    "ipykernel",
    "jupyter_client",
    "jupyter_core",
    "zmq",
    "tornado",
    "traitlets",
    "comm",
    "debugpy",
    "asyncio",
    "prompt_toolkit",
    "matplotlib_inline",
    "_mdrun_state",
    "builtins",
    "sys",
    "getpass",
    "matplotlib.pyplot",
)
"""Modules whose globals the kernel itself rebinds on every request (sys.excepthook,
builtins.input...): never part of the session's state. `sys.path` is followed on its own, and
pyplot's state through its open figures."""


def _display() -> Any:
    """`kernel_display`: installed beside this module in the kernel, imported on the host."""
    module = sys.modules.get("_mdrun_display")
    return module or importlib.import_module("mdrun.document.kernel_display")


def _is_kernel_module(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in KERNEL_MODULES)


WARM_UPS = {
    "PIL.Image": frozenset({"_initialized"}),
    "sympy.core.evalf": frozenset({"evalf_table"}),
    "sympy.integrals.meijerint": frozenset({"_lookup_table"}),
    "sympy.simplify.hyperexpand": frozenset({"_collection", "_meijercollection"}),
}
"""Module globals that a library binds the first time it needs them, to tables it builds or
plugins it loads, and never rebinds: code behaves alike before and after, so they are not
state. Pillow loads its plugins when pyplot first draws a figure: without this, every first
plot would change the state's digest, and a snapshot taken before it could mark the plugins
loaded in a kernel that never loaded them."""


def _global_ids(module: types.ModuleType) -> dict[str, int]:
    warm_ups = WARM_UPS.get(getattr(module, "__name__", None) or "", frozenset())
    try:
        return {
            name: id(value)
            for name, value in vars(module).items()
            if name[:2] != "__" and name not in warm_ups
        }
    except TypeError:
        return {}


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Notes each module's globals right after it is imported, so a later rebinding shows."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        # Loaders that are classes (builtins, frozen modules) are shared: never wrap those.
        if loader is None or isinstance(loader, type) or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            original(module)
            _module_globals[module.__name__] = _global_ids(module)
            _imported_later.add(module.__name__)
            if module.__name__ == "numpy.random.mtrand":
                _initial_states["<numpy.random>"] = pickle.dumps(module.get_state())
            if module.__name__ == "matplotlib":
                _note_initial_settings(module)
            if module.__name__ == "numpy":
                _note_initial_print_options(module)

        with contextlib.suppress(AttributeError, TypeError):
            loader.exec_module = exec_module
        return spec


MATPLOTLIB_SETTINGS = "<matplotlib.rcParams>"
"""matplotlib's settings (`plt.rcParams[...] = ...`, `plt.style.use`): changed in place, where
no rebound global shows it, and they change every figure drawn after."""
_initial_settings: list[dict[str, Any]] = []
"""matplotlib's settings as it loaded them (a deep copy: a list among them may be changed in
place, as `plt.rcParams['font.sans-serif'].insert(0, ...)` does)."""


def _note_initial_settings(matplotlib: types.ModuleType) -> None:
    settings = getattr(matplotlib, "rcParams", None)
    if isinstance(settings, dict):
        _initial_settings[:] = [copy.deepcopy(dict.copy(settings))]


def _matplotlib_settings() -> dict[str, Any] | None:
    """matplotlib's settings if a block changed them (None: as it loaded them). Compared by
    value in C (pickling them would take a millisecond after every block)."""
    matplotlib = sys.modules.get("matplotlib")
    settings = getattr(matplotlib, "rcParams", None)
    if not isinstance(settings, dict) or not _initial_settings:
        return None
    now = dict.copy(settings)
    return None if now == _initial_settings[0] else now


NUMPY_PRINT_OPTIONS = "<numpy.printoptions>"
"""numpy's print options (`np.set_printoptions`, and `%precision` once numpy is imported)."""
_initial_print_options: list[dict[str, Any]] = []


def _note_initial_print_options(numpy: types.ModuleType) -> None:
    with contextlib.suppress(AttributeError):
        _initial_print_options[:] = [numpy.get_printoptions()]


def _numpy_print_options() -> dict[str, Any] | None:
    """numpy's print options if a block changed them (None: as numpy started)."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not _initial_print_options:
        return None
    options = numpy.get_printoptions()
    return None if options == _initial_print_options[0] else options


def note_initial_states() -> None:
    """Note the states modules hold as the kernel starts, before any block runs."""
    import random

    _initial_states["<random>"] = pickle.dumps(random.getstate())
    if "matplotlib" in sys.modules:
        _note_initial_settings(sys.modules["matplotlib"])
    if "numpy" in sys.modules:
        _note_initial_print_options(sys.modules["numpy"])
    _initial_environment.update(os.environ)
    raw = getattr(os.environ, "_data", None)
    if isinstance(raw, dict):
        _initial_environment_data[:] = [dict(raw)]
    _initial_path[:] = sys.path
    _initial_folder[:] = [os.getcwd()]
    import builtins

    _initial_builtins.update({name: id(value) for name, value in vars(builtins).items()})
    _builtins_seen.clear()
    _hidden_seen.clear()
    _initial_streams[:] = [sys.stdout, sys.stderr]
    if hasattr(sys, "get_int_max_str_digits"):
        _initial_digits[:] = [sys.get_int_max_str_digits()]
    _display().note_initial()


_builtins_seen: list[Any] = []
"""The builtins' names and ids at the last `pure_guard`, and those it found rebound then."""
_hidden_seen: list[Any] = []
"""The hidden names at the last `pure_guard`, and those among them pushed by a block."""


def _rebound_builtins() -> dict[str, Any]:
    """The builtins bound to another object than as the kernel started, by `builtins.NAME`.
    Looked at after every block: compared as a whole with the last look first (in C)."""
    import builtins

    table = vars(builtins)
    seen = [list(table), list(map(id, table.values()))]
    if _builtins_seen[:2] == seen:
        return dict(_builtins_seen[2])
    rebound = {
        f"builtins.{name}": value
        for name, value in table.items()
        if _initial_builtins.get(name) != id(value) and name not in REBOUND_BY_KERNEL
    }
    _builtins_seen[:] = [*seen, rebound]
    return dict(rebound)


def _pushed_names(hidden: set[str] | dict[str, Any]) -> list[str]:
    """The hidden names a block pushed (`%pylab`), not IPython's. IPython hides each block's
    input (`_i12`) as it runs: only the names hidden or shown since the last look are tried."""
    names = hidden.keys() if isinstance(hidden, dict) else hidden
    if _hidden_seen and _hidden_seen[0] == names:
        return list(_hidden_seen[1])
    before: set[str] = _hidden_seen[0] if _hidden_seen else set()
    kept = [name for name in (_hidden_seen[1] if _hidden_seen else []) if name in names]
    added = names - before
    kept += [name for name in added if name[:1] != "_" and name not in IPYTHON_HIDDEN]
    _hidden_seen[:] = [set(names), kept]
    return list(kept)


def pure_guard(
    namespace: dict[str, Any], hidden: set[str] | dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    """Why the output of plain computations on plain data may depend on more than their values
    now (no reason: it does not), and the values behind those reasons: builtins rebound, names
    pushed into the namespace as hidden ones (`%pylab` pushes numpy's `sum`), `sys.stdout`
    replaced, the limit on the digits of an integer made into text changed, IPython's display
    settings (`%precision`) or the printers of its formatters for plain data changed (a
    figure's printer, which pyplot adds when it first draws, does not show plain data). mdrun
    then keys no block by what it reads alone; the caller digests the values, so that the
    state's digest changes with them."""
    reasons: list[str] = []
    values: dict[str, Any] = {}
    if _initial_builtins:
        values.update(_rebound_builtins())
        if values:
            reasons.append("builtins rebound")
    pushed = _pushed_names(hidden)
    if pushed:
        reasons.append(f"{len(pushed)} names pushed as hidden")
        values.update((f"hidden.{name}", namespace.get(name)) for name in pushed)
    if _initial_streams and any(
        now is not then
        for now, then in zip((sys.stdout, sys.stderr), _initial_streams, strict=True)
    ):
        reasons.append("sys.stdout or sys.stderr replaced")
    if _initial_digits and sys.get_int_max_str_digits() != _initial_digits[0]:
        reasons.append(f"int_max_str_digits {sys.get_int_max_str_digits()}")
    display = _display()
    changes = display.display_changes()
    if changes is not None:
        settings, removed, changed = changes
        if display.settings_changed(settings):
            reasons.append(f"display settings {settings!r}")
        plain = {label: entry for label, entry in changed.items() if display.shows_plain(entry[1])}
        if plain or removed:
            reasons.append("display printers changed")
            values.update((f"printer {label}", entry[2]) for label, entry in plain.items())
    return reasons, values


def watch_imports() -> None:
    """Note every module's globals now, and those of each module imported from now on."""
    for name, module in list(sys.modules.items()):
        if isinstance(module, types.ModuleType):
            _module_globals[name] = _global_ids(module)
    sys.meta_path.insert(0, _ImportWatcher())


def _modules_in_reach(namespace: dict[str, Any], roots: set[str] | None = None) -> list[str]:
    """The modules whose globals a block may have rebound: those imported since the kernel
    started, and those (with their submodules) that the session's variables come from (their
    `roots`, when the caller knows them). Scanning every module of the process after every
    block would cost more than the block; the list is kept until an import or the roots change
    it, as scanning `sys.modules` costs a millisecond in a kernel."""
    if roots is None:
        roots = {root for root in map(module_root, namespace.values()) if root is not None}
    depends_on = (frozenset(roots), len(_imported_later))
    if _reach_cache and _reach_cache[0] == depends_on and sys.modules.keys() == _reach_cache[1]:
        return list(_reach_cache[2])
    names = list(sys.modules)
    found = [
        name
        for name in names
        if (name in _imported_later or name.partition(".")[0] in roots)
        and not _is_kernel_module(name)
    ]
    _reach_cache[:] = [depends_on, set(names), found]
    return list(found)


def module_root(value: Any) -> str | None:
    """The top-level package a value comes from (None: the session's own, or builtins)."""
    module_name = value.__name__ if isinstance(value, types.ModuleType) else None
    module_name = module_name or getattr(type(value), "__module__", None)
    if isinstance(value, types.FunctionType | type):
        module_name = value.__module__
    if isinstance(module_name, str) and module_name not in ("__main__", "builtins"):
        return module_name.partition(".")[0]
    return None


def module_states(namespace: dict[str, Any], roots: set[str] | None = None) -> dict[str, Any]:
    """State held by modules rather than variables, which a snapshot must carry too.

    A generator still in the state the process started it in is left out: it was not used."""
    states: dict[str, Any] = {}
    if [os.getcwd()] != _initial_folder:
        # Only a folder a block moved to: the document's own folder is where every run starts,
        # and leaving it out keeps keys the same when the document's folder is moved.
        states["<cwd>"] = os.getcwd()
    import random

    generators: dict[str, Any] = {"<random>": random.getstate()}
    mtrand = sys.modules.get("numpy.random.mtrand")
    if mtrand is not None:
        generators["<numpy.random>"] = mtrand.get_state()
    for name, state in generators.items():
        if pickle.dumps(state) != _initial_states.get(name):
            states[name] = state
    settings = _matplotlib_settings()
    if settings is not None:
        states[MATPLOTLIB_SETTINGS] = settings
    display = _display().display_state()
    if display is not None:
        states[_display().DISPLAY] = display
    config = _display().config_state()
    if config is not None:
        states[_display().CONFIG] = config
    print_options = _numpy_print_options()
    if print_options is not None:
        states[NUMPY_PRINT_OPTIONS] = print_options
    states.update(_environment_state())
    if sys.path != _initial_path:
        states["<sys.path>"] = list(sys.path)
    for module_name in _modules_in_reach(namespace, roots):
        baseline = _module_globals.get(module_name)
        module = sys.modules.get(module_name)
        if baseline is None or module is None:
            continue
        for name, value in _rebound_globals(module, baseline):
            states[f"{GLOBAL_PREFIX}{module_name}.{name}>"] = value
    return states


def _environment_state() -> dict[str, Any]:
    """The environment variables blocks changed, if they changed any. Compared first as the
    bytes the process holds (one pass of C code; decoding each variable costs more)."""
    raw = getattr(os.environ, "_data", None)
    if isinstance(raw, dict) and _initial_environment_data and raw == _initial_environment_data[0]:
        return {}
    environment = {
        key: value for key, value in os.environ.items() if _initial_environment.get(key) != value
    }
    removed = sorted(set(_initial_environment) - set(os.environ))
    if environment or removed:
        return {"<environ>": (environment, removed)}
    return {}


def _rebound_globals(module: types.ModuleType, baseline: dict[str, int]) -> list[tuple[str, Any]]:
    """A module's globals bound to another object than right after its import (not modules),
    in the module's order. Rebound names only: libraries add names lazily all the time
    (submodules, plugin registries), while a block that configures a module rebinds one of its
    globals. Compared in a few passes of C code: most modules have many globals, none rebound."""
    try:
        globals_now = vars(module)
    except TypeError:
        return []
    names = list(baseline)
    now = list(map(id, map(globals_now.get, names)))
    changed = set(itertools.compress(names, map(operator.ne, now, baseline.values())))
    rebound = changed & globals_now.keys()  # (a name the module dropped is not rebound)
    if not rebound:
        return []
    return [
        (name, value)
        for name, value in list(globals_now.items())
        if name in rebound and not isinstance(value, types.ModuleType)
    ]
