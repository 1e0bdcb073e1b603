"""autostage: a decorator that turns a function with keyword defaults into a stage.

The config is the function's defaults plus the decorator's keywords plus the stage call's
overrides; callable values are called with the registry, which is how dependencies are declared.
`__source__`, a digest of the function's normalized source, changes the dref when the code
changes. At realization the function runs once per output, its arguments translated: promise
paths become paths in that output, dependencies become `Attrs` objects. Matching, building and
publishing are left to `matchers`, `build` and `realize`.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sys
import textwrap
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from mdrun.core.build import Attrs, Build, build_wrapper
from mdrun.core.config import Config, is_refpath, is_selfpath
from mdrun.core.matchers import match_latest
from mdrun.core.refs import NAME_PATTERN, DRef, RRef, rref_to_dref
from mdrun.core.registry import Matcher, Realizer, Registry, mkdrv, resolve_registry
from mdrun.core.store import Context, Store
from mdrun.errors import ConfigError, StoreError

SOURCE_FIELD = "__source__"
"""The config field holding the digest of the function's source."""
AUTOSTAGE_VERSION = "mdrun-autostage 1"
"""Hashed into every `__source__`: bump it when the argument translation changes meaning."""
BUILD_PARAMETER = "build"
RINDEX_PARAMETER = "rindex"
_RESERVED = frozenset({BUILD_PARAMETER, RINDEX_PARAMETER})

StageFunction = Callable[..., object]
"""The decorated function: `f(build, rindex, A, out, DS, ...)`, each parameter optional."""


# -- __source__: a digest that is the same in every process ---------------------------------------


def source_digest(function: object, sourcedeps: Sequence[object] = ()) -> str:
    """SHA-256 of the normalized source of `function` and `sourcedeps`.

    Normalized means the AST dump of the definition with its decorators and docstring dropped,
    so comments, blank lines, indentation and the decorator's own arguments (which are in the
    config already) do not count. Where there is no source (a function defined in `python -c`
    or a bare REPL), the code object stands in: bytecode, constants and names, which are stable
    for one Python minor version (and the version is part of the text hashed).
    """
    digest = hashlib.sha256(AUTOSTAGE_VERSION.encode())
    for item in (function, *sourcedeps):
        digest.update(b"\0")
        digest.update(normalized_source(item).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def normalized_source(item: object) -> str:
    """The text that stands for an object's code in `source_digest`."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(item)))  # type: ignore[arg-type]
    except (OSError, TypeError, SyntaxError):
        return "code " + code_fingerprint(item)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.decorator_list = []
            if len(node.body) > 1 and _is_docstring(node.body[0]):
                node.body = node.body[1:]
    return "ast " + ast.dump(tree)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def code_fingerprint(item: object) -> str:
    """Bytecode, constants and names of a function (or of a class's functions)."""
    version = f"python {sys.version_info.major}.{sys.version_info.minor}"
    code = getattr(item, "__code__", None)
    if isinstance(code, types.CodeType):
        return f"{version} {_code_text(code)}"
    if isinstance(item, type):
        members = [
            f"{name}={_code_text(member.__code__)}"
            for name, member in sorted(vars(item).items())
            if isinstance(getattr(member, "__code__", None), types.CodeType)
        ]
        return f"{version} class {item.__qualname__} " + " ".join(members)
    raise ConfigError(
        f"autostage: cannot fingerprint {item!r}: it has no source and no code object "
        "(sourcedeps takes functions and classes)"
    )


def _code_text(code: types.CodeType) -> str:
    names = (code.co_name, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)
    constants = ",".join(_constant_text(constant) for constant in code.co_consts)
    return f"{code.co_code.hex()} {names!r} [{constants}]"


def _constant_text(value: object) -> str:
    """A constant's text; frozensets sorted, since their order varies with the hash seed."""
    if isinstance(value, types.CodeType):
        return f"code({_code_text(value)})"
    if isinstance(value, tuple):
        return "(" + ",".join(_constant_text(item) for item in value) + ")"
    if isinstance(value, frozenset):
        return "frozenset(" + ",".join(sorted(_constant_text(item) for item in value)) + ")"
    return repr(value)


# -- realization: the function's arguments, per output ------------------------------------------


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a config's values point: its own folder and its direct context."""

    folder: Path
    context: Context


class _Arguments:
    """Translates config values into the function's arguments for one output of a build."""

    def __init__(self, build: Build, always_multiref: bool) -> None:
        self.build = build
        self.store: Store = build.store
        self.always_multiref = always_multiref
        self._dependencies: dict[RRef, Attrs] = {}

    def value(self, value: Any, place: _Place) -> Any:
        if is_selfpath(value):
            return str(place.folder.joinpath(*value[1:]))
        if is_refpath(value):
            return [
                str(self.store.realization_path(rref).joinpath(*value[1:]))
                for rref in self._realizations(DRef(value[0]), place)
            ]
        if isinstance(value, str) and value in place.context:
            attrs = [self.dependency(rref) for rref in place.context[DRef(value)]]
            return attrs if self.always_multiref or len(attrs) != 1 else attrs[0]
        if isinstance(value, list):
            return [self.value(item, place) for item in value]
        if isinstance(value, dict):
            return {key: self.value(item, place) for key, item in value.items()}
        return value

    def _realizations(self, dref: DRef, place: _Place) -> list[RRef]:
        rrefs = place.context.get(dref)
        if not rrefs:
            raise StoreError(f"{self.build.dref}: {dref} has no realization in this build")
        return rrefs

    def dependency(self, rref: RRef) -> Attrs:
        """A dependency's config as attributes, its paths inside `rref`, plus `_rref`."""
        cached = self._dependencies.get(rref)
        if cached is None:
            place = _Place(self.store.realization_path(rref), self.store.context_of(rref))
            config = self.store.config_of(rref_to_dref(rref)).data
            values = {
                key: self.value(item, place) for key, item in config.items() if key != SOURCE_FIELD
            }
            values["_rref"] = rref
            cached = self._dependencies[rref] = Attrs(values)
        return cached


# -- the stage -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class AutoStage:
    """A stage made by `@autostage`: `stage(r=None, **overrides) -> DRef`."""

    function: StageFunction
    """The decorated function, called once per output at realization."""
    fields: dict[str, Any]
    """Config fields before the call: defaults and decorator keywords (callables not called)."""
    required: tuple[str, ...]
    """Parameters without a value yet: a call must give them."""
    matcher: Matcher
    """Chooses the realizations (default: the `nouts` latest)."""
    realizer: Realizer
    """Runs the function; made once, since it reads everything from the built config."""
    registry: Registry | None = None
    """The decorator's `r`: the registry used when a call names none."""
    source: str = field(default="")
    """The `__source__` digest."""

    def __call__(self, r: Registry | None = None, **overrides: Any) -> DRef:
        """Register the derivation (with `overrides` replacing config fields); its dref."""
        registry = resolve_registry(r if r is not None else self.registry)
        label = f"autostage {self.function.__qualname__}"
        known = set(self.fields) | set(self.required)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"{label}: unknown config field(s) {', '.join(unknown)} "
                f"(fields: {', '.join(sorted(known))})"
            )
        values = {**self.fields, **overrides}
        missing = [name for name in self.required if name not in values]
        if missing:
            raise ConfigError(
                f"{label}: no value for parameter(s) {', '.join(missing)}: give a default, a "
                "decorator keyword, or a keyword when calling the stage"
            )
        config = {
            key: value(registry) if callable(value) else value for key, value in values.items()
        }
        config[SOURCE_FIELD] = self.source
        try:
            checked = Config(config)
        except ConfigError as err:
            raise ConfigError(f"{label}: {err.message}") from None
        return mkdrv(registry, checked, self.matcher, self.realizer)

    def __repr__(self) -> str:
        return f"<autostage {self.function.__qualname__} {sorted(self.fields)}>"


def _stage_realizer(
    function: StageFunction, parameters: list[str], nouts: int, always_multiref: bool
) -> Realizer:
    """A realizer calling `function` once per output with the arguments it declares."""
    accepts_any = any(
        parameter.kind is inspect.Parameter.VAR_KEYWORD
        for parameter in inspect.signature(function).parameters.values()
    )

    def realize(build: Build) -> None:
        config = {key: item for key, item in build.config.data.items() if key != SOURCE_FIELD}
        extra = [key for key in config if key not in parameters] if accepts_any else []
        wanted = [*parameters, *extra]
        for index, output in enumerate(build.outputs()):
            arguments = _Arguments(build, always_multiref)
            place = _Place(output, build.context)
            kwargs: dict[str, Any] = {}
            for name in wanted:
                if name == BUILD_PARAMETER:
                    kwargs[name] = build
                elif name == RINDEX_PARAMETER:
                    kwargs[name] = index
                else:
                    kwargs[name] = arguments.value(config[name], place)
            function(**kwargs)

    realizer: Realizer = build_wrapper(realize, nouts=nouts)
    return realizer


def _make_stage(
    function: StageFunction,
    *,
    name: str | None,
    nouts: int,
    matcher: Matcher | None,
    always_multiref: bool,
    sourcedeps: Sequence[object],
    registry: Registry | None,
    keywords: dict[str, Any],
) -> AutoStage:
    label = f"autostage {getattr(function, '__qualname__', repr(function))}"
    if not callable(function):
        raise ConfigError(f"{label}: decorates functions, not {type(function).__name__}")
    if not isinstance(nouts, int) or isinstance(nouts, bool) or nouts < 1:
        raise ConfigError(f"{label}: nouts must be an integer of 1 or more, not {nouts!r}")
    signature = inspect.signature(function)
    parameters: list[str] = []
    defaults: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigError(
                f"{label}: parameter {parameter.name!r} is positional-only; autostage passes "
                "arguments by name"
            )
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        parameters.append(parameter.name)
        if parameter.name not in _RESERVED and parameter.default is not inspect.Parameter.empty:
            defaults[parameter.name] = parameter.default
    if RINDEX_PARAMETER in parameters and nouts == 1 and not always_multiref:
        raise ConfigError(
            f"{label}: the function takes `rindex`, but the stage makes one output; "
            "set nouts to more than 1, or always_multiref=True"
        )
    if name is not None:
        keywords = {**keywords, "name": name}
    both = sorted(set(defaults) & set(keywords))
    if both:
        raise ConfigError(
            f"{label}: {', '.join(both)} given both as a default in the signature and as a "
            "decorator keyword; keep one"
        )
    fields = {**defaults, **keywords}
    if "name" not in fields:
        own_name = getattr(function, "__name__", "")
        fields["name"] = own_name if NAME_PATTERN.fullmatch(own_name) else "unnamed"
    required = tuple(p for p in parameters if p not in _RESERVED and p not in fields)
    return AutoStage(
        function=function,
        fields=fields,
        required=required,
        matcher=matcher if matcher is not None else match_latest(nouts),
        realizer=_stage_realizer(function, parameters, nouts, always_multiref),
        registry=registry,
        source=source_digest(function, sourcedeps),
    )


@overload
def autostage(
    fn: StageFunction,
    /,
    *,
    name: str | None = None,
    nouts: int = 1,
    matcher: Matcher | None = None,
    always_multiref: bool = False,
    sourcedeps: Sequence[object] = (),
    r: Registry | None = None,
    **kwargs: Any,
) -> AutoStage: ...


@overload
def autostage(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    nouts: int = 1,
    matcher: Matcher | None = None,
    always_multiref: bool = False,
    sourcedeps: Sequence[object] = (),
    r: Registry | None = None,
    **kwargs: Any,
) -> Callable[[StageFunction], AutoStage]: ...


def autostage(
    fn: StageFunction | None = None,
    /,
    *,
    name: str | None = None,
    nouts: int = 1,
    matcher: Matcher | None = None,
    always_multiref: bool = False,
    sourcedeps: Sequence[object] = (),
    r: Registry | None = None,
    **kwargs: Any,
) -> AutoStage | Callable[[StageFunction], AutoStage]:
    """Make a stage of `fn`; usable bare (`@autostage`) or with keywords.

    Keywords other than the special ones (`name`, `nouts`, `matcher`, `always_multiref`,
    `sourcedeps`, `r`) are config fields; `name` is the config's name (default: the
    function's). The default matcher takes the `nouts` latest realizations.
    """

    def decorate(function: StageFunction) -> AutoStage:
        return _make_stage(
            function,
            name=name,
            nouts=nouts,
            matcher=matcher,
            always_multiref=always_multiref,
            sourcedeps=sourcedeps,
            registry=r,
            keywords=dict(kwargs),
        )

    return decorate if fn is None else decorate(fn)


__all__ = ["AutoStage", "autostage", "source_digest"]
