"""mdrun.core: the store. `from mdrun.core import *` gives the seeds' API (Pylightnix names).

Each module holds one concept and lists its public names in `__all__`; this package re-exports
them, with the seeds' aliases below. Nothing here knows Markdown.
"""

from mdrun.core.archive import (
    export_closure,
    import_closure,
    spack,
    sunpack,
)
from mdrun.core.autostage import (
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
from mdrun.core.fetch import (
    fetchlocal,
    fetchurl,
    unpack_archive,
)
from mdrun.core.files import (
    dirrw,
)
from mdrun.core.gc import (
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
from mdrun.core.realize import (
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
    current_storage,
    default_store,
    fsinit,
)
from mdrun.errors import BuildError, PromiseError

selfref = SELFREF
"""The seeds' name of the promise-path head."""
promise = SELFREF
"""The manual's older name of the same marker."""
rref2dref = rref_to_dref
"""The seeds' name of `rref_to_dref`."""
PromiseException = PromiseError
"""The seeds' name of `PromiseError`."""

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
    "roots_in",
    "rref2dref",
    "rref_to_dref",
    "selfref",
    "source_digest",
    "spack",
    "store_gc",
    "sunpack",
    "unpack_archive",
    "write_build_metadata",
]
