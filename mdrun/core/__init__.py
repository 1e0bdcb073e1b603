"""mdrun.core: the store. `from mdrun.core import *` gives the seeds' API (Pylightnix names).

Each module holds one concept and lists its public names in `__all__`; this package re-exports
them, with the seeds' aliases. Nothing here knows Markdown. Names are loaded on first use
(PEP 562), so that a program using one module (the document evaluator reading a cached run)
does not pay for importing the others (downloads, archives, autostage).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mdrun.core.archive import (
        export_closure,
        import_closure,
        spack,
        sunpack,
    )
    from mdrun.core.autostages import (
        AutoStage,
        autostage,
        source_digest,
    )
    from mdrun.core.build import (
        Attrs,
        Build,
        build_cattrs,
        build_config,
        build_context,
        build_deref,
        build_deref_,
        build_name,
        build_outpath,
        build_outpaths,
        build_path,
        build_paths,
        build_setoutpaths,
        build_wrapper,
        write_build_metadata,
    )
    from mdrun.core.config import (
        SELFREF,
        Config,
        RefPath,
        is_refpath,
        is_selfpath,
        mkconfig,
    )
    from mdrun.core.config import SELFREF as promise
    from mdrun.core.config import SELFREF as selfref
    from mdrun.core.default_store import (
        current_storage,
        default_store,
        fsinit,
    )
    from mdrun.core.fetch import (
        fetchlocal,
        fetchurl,
        unpack_archive,
    )
    from mdrun.core.files import (
        dirrw,
    )
    from mdrun.core.garbage import (
        GCPlan,
        gc,
        gc_plan,
        link_root,
        roots_in,
        store_gc,
    )
    from mdrun.core.lens import (
        Lens,
        mklens,
    )
    from mdrun.core.matchers import (
        match_all,
        match_best,
        match_exact,
        match_latest,
        match_only,
        match_some,
    )
    from mdrun.core.paths import (
        StorePath,
        dref2path,
        rref2path,
    )
    from mdrun.core.paths import dref2path as store_dref2path
    from mdrun.core.paths import rref2path as store_rref2path
    from mdrun.core.realization import (
        DryRun,
        RealizeResult,
        dry_run,
        realize,
        realize1,
        realize_all,
        realize_closure,
        realize_derivation,
        realizeMany,
    )
    from mdrun.core.refs import (
        DRef,
        HashPart,
        Name,
        RRef,
        is_dref,
        is_rref,
        rref_to_dref,
    )
    from mdrun.core.refs import rref_to_dref as rref2dref
    from mdrun.core.registry import (
        Closure,
        Derivation,
        Manager,
        Matcher,
        Realizer,
        Registry,
        current_registry,
        instantiate,
        mkdrv,
    )
    from mdrun.core.stages import (
        ARTIFACTS_FIELD,
        mknode,
        realized,
        redefine,
    )
    from mdrun.core.store import (
        Context,
        Store,
    )
    from mdrun.core.verify import (
        Finding,
        Verification,
        remove_damaged,
        verify_store,
    )
    from mdrun.errors import BuildError, PromiseError
    from mdrun.errors import PromiseError as PromiseException

_SOURCES: dict[str, tuple[str, str]] = {
    "ARTIFACTS_FIELD": ("mdrun.core.stages", "ARTIFACTS_FIELD"),
    "Attrs": ("mdrun.core.build", "Attrs"),
    "AutoStage": ("mdrun.core.autostages", "AutoStage"),
    "Build": ("mdrun.core.build", "Build"),
    "BuildError": ("mdrun.errors", "BuildError"),
    "Closure": ("mdrun.core.registry", "Closure"),
    "Config": ("mdrun.core.config", "Config"),
    "Context": ("mdrun.core.store", "Context"),
    "DRef": ("mdrun.core.refs", "DRef"),
    "Derivation": ("mdrun.core.registry", "Derivation"),
    "DryRun": ("mdrun.core.realization", "DryRun"),
    "GCPlan": ("mdrun.core.garbage", "GCPlan"),
    "HashPart": ("mdrun.core.refs", "HashPart"),
    "Lens": ("mdrun.core.lens", "Lens"),
    "Manager": ("mdrun.core.registry", "Manager"),
    "Matcher": ("mdrun.core.registry", "Matcher"),
    "Name": ("mdrun.core.refs", "Name"),
    "PromiseError": ("mdrun.errors", "PromiseError"),
    "PromiseException": ("mdrun.errors", "PromiseError"),
    "RRef": ("mdrun.core.refs", "RRef"),
    "RealizeResult": ("mdrun.core.realization", "RealizeResult"),
    "Realizer": ("mdrun.core.registry", "Realizer"),
    "RefPath": ("mdrun.core.config", "RefPath"),
    "Registry": ("mdrun.core.registry", "Registry"),
    "SELFREF": ("mdrun.core.config", "SELFREF"),
    "Store": ("mdrun.core.store", "Store"),
    "StorePath": ("mdrun.core.paths", "StorePath"),
    "autostage": ("mdrun.core.autostages", "autostage"),
    "build_cattrs": ("mdrun.core.build", "build_cattrs"),
    "build_config": ("mdrun.core.build", "build_config"),
    "build_context": ("mdrun.core.build", "build_context"),
    "build_deref": ("mdrun.core.build", "build_deref"),
    "build_deref_": ("mdrun.core.build", "build_deref_"),
    "build_name": ("mdrun.core.build", "build_name"),
    "build_outpath": ("mdrun.core.build", "build_outpath"),
    "build_outpaths": ("mdrun.core.build", "build_outpaths"),
    "build_path": ("mdrun.core.build", "build_path"),
    "build_paths": ("mdrun.core.build", "build_paths"),
    "build_setoutpaths": ("mdrun.core.build", "build_setoutpaths"),
    "build_wrapper": ("mdrun.core.build", "build_wrapper"),
    "current_registry": ("mdrun.core.registry", "current_registry"),
    "current_storage": ("mdrun.core.default_store", "current_storage"),
    "default_store": ("mdrun.core.default_store", "default_store"),
    "dirrw": ("mdrun.core.files", "dirrw"),
    "dref2path": ("mdrun.core.paths", "dref2path"),
    "dry_run": ("mdrun.core.realization", "dry_run"),
    "export_closure": ("mdrun.core.archive", "export_closure"),
    "fetchlocal": ("mdrun.core.fetch", "fetchlocal"),
    "fetchurl": ("mdrun.core.fetch", "fetchurl"),
    "fsinit": ("mdrun.core.default_store", "fsinit"),
    "gc": ("mdrun.core.garbage", "gc"),
    "gc_plan": ("mdrun.core.garbage", "gc_plan"),
    "import_closure": ("mdrun.core.archive", "import_closure"),
    "instantiate": ("mdrun.core.registry", "instantiate"),
    "is_dref": ("mdrun.core.refs", "is_dref"),
    "is_refpath": ("mdrun.core.config", "is_refpath"),
    "is_rref": ("mdrun.core.refs", "is_rref"),
    "is_selfpath": ("mdrun.core.config", "is_selfpath"),
    "link_root": ("mdrun.core.garbage", "link_root"),
    "match_all": ("mdrun.core.matchers", "match_all"),
    "match_best": ("mdrun.core.matchers", "match_best"),
    "match_exact": ("mdrun.core.matchers", "match_exact"),
    "match_latest": ("mdrun.core.matchers", "match_latest"),
    "match_only": ("mdrun.core.matchers", "match_only"),
    "match_some": ("mdrun.core.matchers", "match_some"),
    "mkconfig": ("mdrun.core.config", "mkconfig"),
    "mkdrv": ("mdrun.core.registry", "mkdrv"),
    "mklens": ("mdrun.core.lens", "mklens"),
    "mknode": ("mdrun.core.stages", "mknode"),
    "promise": ("mdrun.core.config", "SELFREF"),
    "realize": ("mdrun.core.realization", "realize"),
    "realize1": ("mdrun.core.realization", "realize1"),
    "realizeMany": ("mdrun.core.realization", "realizeMany"),
    "realize_all": ("mdrun.core.realization", "realize_all"),
    "realize_closure": ("mdrun.core.realization", "realize_closure"),
    "realize_derivation": ("mdrun.core.realization", "realize_derivation"),
    "realized": ("mdrun.core.stages", "realized"),
    "redefine": ("mdrun.core.stages", "redefine"),
    "roots_in": ("mdrun.core.garbage", "roots_in"),
    "rref2path": ("mdrun.core.paths", "rref2path"),
    "rref2dref": ("mdrun.core.refs", "rref_to_dref"),
    "rref_to_dref": ("mdrun.core.refs", "rref_to_dref"),
    "selfref": ("mdrun.core.config", "SELFREF"),
    "source_digest": ("mdrun.core.autostages", "source_digest"),
    "spack": ("mdrun.core.archive", "spack"),
    "store_dref2path": ("mdrun.core.paths", "dref2path"),
    "store_gc": ("mdrun.core.garbage", "store_gc"),
    "store_rref2path": ("mdrun.core.paths", "rref2path"),
    "sunpack": ("mdrun.core.archive", "sunpack"),
    "unpack_archive": ("mdrun.core.fetch", "unpack_archive"),
    "write_build_metadata": ("mdrun.core.build", "write_build_metadata"),
    "Finding": ("mdrun.core.verify", "Finding"),
    "Verification": ("mdrun.core.verify", "Verification"),
    "remove_damaged": ("mdrun.core.verify", "remove_damaged"),
    "verify_store": ("mdrun.core.verify", "verify_store"),
}
"""Where each public name lives: (module, attribute)."""


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module 'mdrun.core' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


__all__ = [
    "ARTIFACTS_FIELD",
    "Attrs",
    "AutoStage",
    "Build",
    "BuildError",
    "Closure",
    "Config",
    "Context",
    "DRef",
    "Derivation",
    "DryRun",
    "Finding",
    "GCPlan",
    "HashPart",
    "Lens",
    "Manager",
    "Matcher",
    "Name",
    "PromiseError",
    "PromiseException",
    "RRef",
    "RealizeResult",
    "Realizer",
    "RefPath",
    "Registry",
    "SELFREF",
    "Store",
    "StorePath",
    "Verification",
    "autostage",
    "build_cattrs",
    "build_config",
    "build_context",
    "build_deref",
    "build_deref_",
    "build_name",
    "build_outpath",
    "build_outpaths",
    "build_path",
    "build_paths",
    "build_setoutpaths",
    "build_wrapper",
    "current_registry",
    "current_storage",
    "default_store",
    "dirrw",
    "dref2path",
    "dry_run",
    "export_closure",
    "fetchlocal",
    "fetchurl",
    "fsinit",
    "gc",
    "gc_plan",
    "import_closure",
    "instantiate",
    "is_dref",
    "is_refpath",
    "is_rref",
    "is_selfpath",
    "link_root",
    "match_all",
    "match_best",
    "match_exact",
    "match_latest",
    "match_only",
    "match_some",
    "mkconfig",
    "mkdrv",
    "mklens",
    "mknode",
    "promise",
    "realize",
    "realize1",
    "realizeMany",
    "realize_all",
    "realize_closure",
    "realize_derivation",
    "realized",
    "redefine",
    "remove_damaged",
    "roots_in",
    "rref2path",
    "rref2dref",
    "rref_to_dref",
    "selfref",
    "source_digest",
    "spack",
    "store_dref2path",
    "store_gc",
    "store_rref2path",
    "sunpack",
    "unpack_archive",
    "verify_store",
    "write_build_metadata",
]
