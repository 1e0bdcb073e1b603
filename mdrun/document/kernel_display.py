"""Code that runs inside a Python kernel: how IPython displays a block's last value, as state
of the session's. Its settings (`%precision`, `%pprint`) and the printers its formatters hold
are noted when the kernel starts; those blocks changed enter the state's digest, keep pure
blocks from being keyed by what they read when they may show plain data (`shows_plain`), and
are carried by snapshots and put back (`restore_display`). Sent to the kernel with
`kernel_state` (standard library only).
"""

from __future__ import annotations

import contextlib
import copy
import sys
from typing import Any

_initial_display: list[Any] = []
"""IPython's display settings as the kernel started, and its printers' ids and (kind, key),
by label."""
_PLAIN_SETTINGS = ("float_precision", "pprint", "max_width", "max_seq_length", "verbose")
DISPLAY = "<display>"
"""IPython's display settings and the printers blocks gave its formatters, as module state."""
_initial_config: list[Any] = []
"""IPython's configuration as the kernel started (a deep copy)."""
CONFIG = "<ipython config>"
"""The sections of IPython's configuration blocks changed (`%config`), as module state: the
inline backend's figure formats live there until pyplot first draws."""


def note_initial() -> None:
    """Note the display settings and printers as the kernel starts, before any block runs."""
    shell = _shell()
    if shell is not None:
        with contextlib.suppress(Exception):
            _initial_config[:] = [copy.deepcopy(shell.config)]
    display = _display_state()
    if display is not None:
        settings, printers = display
        ids = {label: id(entry[2]) for label, entry in printers.items()}
        keys = {label: entry[:2] for label, entry in printers.items()}
        _initial_display[:] = [settings, ids, keys]


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def config_state() -> dict[str, Any] | None:
    """The sections of IPython's configuration that blocks changed (None: none)."""
    shell = _shell()
    if shell is None or not _initial_config or shell.config == _initial_config[0]:
        return None
    initial = _initial_config[0]
    return {
        section: value for section, value in shell.config.items() if initial.get(section) != value
    } or None


def restore_config(sections: dict[str, Any]) -> None:
    """Give IPython back the configuration of `config_state`, as `%config` sets it: in its
    configuration and in the objects already configured from it."""
    from traitlets.config import Config

    shell = _shell()
    changed = Config(sections)
    shell.config.merge(changed)
    for configurable in list(getattr(shell, "configurables", ())):
        configurable.update_config(changed)


def settings_changed(settings: tuple[Any, ...]) -> bool:
    """Whether `settings` (see `display_changes`) differ from those the kernel started with."""
    return bool(_initial_display) and settings != _initial_display[0]


def _display_state() -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """How IPython displays a block's last value: its settings (`%precision`, `%pprint`, which
    expressions are shown) and the printers its formatters hold, by formatter and type; None
    outside IPython."""
    shell = _shell()
    if shell is None:
        return None
    formatters = shell.display_formatter.formatters
    plain = formatters.get("text/plain")
    settings = (
        shell.ast_node_interactivity,
        *(getattr(plain, name, None) for name in _PLAIN_SETTINGS),
    )
    printers: dict[str, Any] = {}
    for kind, formatter in formatters.items():
        for table in (formatter.type_printers, formatter.deferred_printers):
            for key, printer in list(table.items()):
                printers[f"{kind} {key!r}"] = (kind, key, printer)
    return settings, printers


def shows_plain(key: Any) -> bool:
    """Whether a printer registered for `key` (a type, or a module and a name) may show what
    a pure block computes: any builtin type (sets, a dict's keys and `zip` objects too), and
    `object`. A printer for a library's class (a figure) may not."""
    if isinstance(key, tuple):
        return not key or key[0] == "builtins"
    return not isinstance(key, type) or key.__module__ == "builtins"


def display_changes() -> tuple[tuple[Any, ...], list[str], dict[str, Any]] | None:
    """IPython's display settings, the printers blocks added or replaced (by label: kind,
    key, printer) and the labels of those they removed; None when all are as the kernel
    started or outside IPython."""
    display = _display_state() if _initial_display else None
    if display is None:
        return None
    settings, printers = display
    initial = _initial_display[1]
    changed = {
        label: entry for label, entry in printers.items() if initial.get(label) != id(entry[2])
    }
    removed = sorted(initial.keys() - printers.keys())
    if settings == _initial_display[0] and not changed and not removed:
        return None
    return settings, removed, changed


def display_state() -> tuple[Any, ...] | None:
    """What a snapshot carries of how IPython displays values (see `restore_display`): its
    settings, the printers blocks added or replaced (kind, key, printer) and the kind and key
    of those they removed; None if all are as the kernel started them."""
    changes = display_changes()
    if changes is None:
        return None
    settings, removed, changed = changes
    gone = [_initial_display[2][label] for label in removed]
    return settings, [changed[label] for label in sorted(changed)], gone


def restore_display(state: tuple[Any, ...]) -> None:
    """Give IPython back the display settings and printers of `display_state`. (Setting
    `%precision` sets numpy's too: numpy's print options are its own state, put back apart.)"""
    shell = _shell()
    formatters = shell.display_formatter.formatters
    settings, printers, removed = state
    numpy = sys.modules.get("numpy")
    numpy_options = numpy.get_printoptions() if numpy is not None else None
    shell.ast_node_interactivity = settings[0]
    plain = formatters.get("text/plain")
    for name, value in zip(_PLAIN_SETTINGS, settings[1:], strict=False):
        if value is not None:
            setattr(plain, name, value)
    if numpy is not None and numpy_options is not None:
        numpy.set_printoptions(**numpy_options)
    for kind, key in removed:
        formatter = formatters.get(kind)
        if formatter is not None:
            formatter.pop(f"{key[0]}.{key[1]}" if isinstance(key, tuple) else key, None)
    for kind, key, printer in printers:
        formatter = formatters.get(kind)
        if formatter is None:
            continue
        if isinstance(key, tuple):
            formatter.for_type_by_name(*key, printer)
        else:
            formatter.for_type(key, printer)
