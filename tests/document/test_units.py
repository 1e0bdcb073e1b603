"""Units of parallel work, without a kernel: which sessions are stale, a plan cut to sessions,
the thread counts a kernel gets, and a unit that survives pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

from mdrun.core.store import Store
from mdrun.document.formats.settings import Settings
from mdrun.document.parallel import stale_sessions
from mdrun.document.parse import parse_document
from mdrun.document.plan import plan_document
from mdrun.document.units import Forcing, Unit, only_sessions, thread_environment

TEXT = """\
```python
a = 1
```

```python session=other
b = 2
```

```python
print(a)
```
"""


def test_a_plan_cut_to_one_session_keeps_its_blocks_and_their_links(tmp_path: Path) -> None:
    plan = plan_document(parse_document(TEXT, "doc.md"), tmp_path)
    main = plan.blocks[0].session
    assert main is not None
    cut = only_sessions(plan, frozenset({main}))
    assert [block.executable for block in cut.blocks] == [True, False, True]
    assert cut.blocks[2].upstream == 0
    assert cut.blocks[2].base_config == plan.blocks[2].base_config


def test_with_an_empty_store_every_session_is_stale(tmp_path: Path) -> None:
    plan = plan_document(parse_document(TEXT, "doc.md"), tmp_path)
    store = Store.initialize(tmp_path / "store")
    assert {key.name for key in stale_sessions(plan, store, Forcing())} == {"main", "other"}


def test_kernels_get_the_users_thread_counts_or_their_share() -> None:
    assert thread_environment(3, {"OMP_NUM_THREADS": "8"}) == (
        ("OMP_NUM_THREADS", "8"),
        ("OPENBLAS_NUM_THREADS", "3"),
        ("MKL_NUM_THREADS", "3"),
    )


def test_a_unit_is_plain_data_a_pool_or_a_cluster_can_carry(tmp_path: Path) -> None:
    plan = plan_document(parse_document(TEXT, "doc.md"), tmp_path)
    session = plan.blocks[1].session
    assert session is not None
    unit = Unit("doc.md", TEXT, "doc.md", str(tmp_path), Settings(), session, "store",
                Forcing(True, frozenset({"b1"})), threads=(("OMP_NUM_THREADS", "1"),))  # fmt: skip
    assert pickle.loads(pickle.dumps(unit)) == unit
    assert unit.label == "doc.md (other)"
