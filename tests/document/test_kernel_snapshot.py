"""Per-variable snapshots, written and loaded in this process (`kernel_snapshot` is plain
Python): shared objects stay shared, an unchanged variable's file is linked from the previous
snapshot rather than written again, and nothing is loaded from a file that does not match."""

from __future__ import annotations

import hashlib
import json
import pickle
import time
import types
from pathlib import Path
from typing import Any

import pytest

from mdrun.core.build import Build, build_outpath, build_wrapper
from mdrun.core.matchers import match_only
from mdrun.core.realization import realize1
from mdrun.core.refs import DRef
from mdrun.core.registry import Registry, instantiate, mkdrv
from mdrun.core.store import Store
from mdrun.document import kernel_digest, kernel_snapshot, kernel_state
from mdrun.document.results import read_result


def _capture(namespace: dict[str, Any], code: str, folder: Path, previous: Path | None) -> Path:
    """Run `code` as a block, then capture with a snapshot into `folder`; the index."""
    kernel_state._note_execution()
    kernel_state._note_cell_start(types.SimpleNamespace(raw_cell=code))
    exec(compile(code, "<block>", "exec"), namespace)
    folder.mkdir()
    index = folder / "_snapshot.json"
    sha256 = None if previous is None else hashlib.sha256(previous.read_bytes()).hexdigest()
    kernel_state.capture(
        namespace,
        {"__builtins__"},
        str(folder / "state.json"),
        str(index),
        previous_snapshot=None if previous is None else str(previous),
        previous_sha256=sha256,
    )
    return index


def _restore(index: Path, expected: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    report = index.parent / "restore.json"
    sha256 = expected or hashlib.sha256(index.read_bytes()).hexdigest()
    kernel_snapshot.restore(namespace, str(index), str(report), sha256)
    return namespace, json.loads(report.read_text())


@pytest.fixture(autouse=True)
def _fresh_agent() -> None:
    kernel_state.forget_last_capture()
    kernel_state._executions_since_capture[0] = 0


def test_an_unchanged_variable_is_linked_not_written_again(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    first = _capture(namespace, "big = list(range(100_000))\nsmall = 1", tmp_path / "1", None)
    second = _capture(namespace, "small = 2", tmp_path / "2", first)
    record = json.loads((tmp_path / "2" / "state.json").read_text())
    assert record["snapshot_linked"] > record["snapshot_written"] > 0
    files = json.loads(second.read_text())["files"]
    holding = {name: file for file, entry in files.items() for name in entry["names"]}
    big, small = tmp_path / "2" / holding["big"], tmp_path / "2" / holding["small"]
    assert big.samefile(tmp_path / "1" / holding["big"])
    assert small.stat().st_nlink == 1 and not (tmp_path / "1" / holding["small"]).exists()
    restored, report = _restore(second)
    assert "refused" not in report
    assert restored["big"] == list(range(100_000)) and restored["small"] == 2


def test_variables_that_share_an_object_still_share_it_once_restored(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    code = "a = b = []\nc = {'a': a}\nd = list(range(100_000))"
    index = _capture(namespace, code, tmp_path / "1", None)
    groups = [entry["names"] for entry in json.loads(index.read_text())["files"].values()]
    assert ["a", "b", "c"] in groups and ["d"] in groups
    restored, _report = _restore(index)
    restored["a"].append(5)
    assert restored["b"] == [5] and restored["c"] == {"a": [5]}
    assert restored["d"] == list(range(100_000))


def test_small_variables_share_a_file_and_a_large_one_keeps_its_own(tmp_path: Path) -> None:
    """A file per small variable made a long session's snapshots cost a file per variable."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    code = "\n".join(f"v{number} = {number}" for number in range(300)) + "\nbig = [0.5] * 50_000"
    first = _capture(namespace, code, tmp_path / "1", None)
    files = json.loads(first.read_text())["files"]
    names = sorted(tuple(entry["names"]) for entry in files.values())
    assert ("big",) in names and len(names) <= 3  # big, the small ones, `<random>`
    second = _capture(namespace, "v7 = 'seven'", tmp_path / "2", first)
    both = set(files) & set(json.loads(second.read_text())["files"])
    kept = [name for name in both if not files[name]["names"][0].startswith("<")]
    assert [files[name]["names"] for name in kept] == [["big"]]  # the small ones' file changed
    (big,) = kept
    assert (tmp_path / "1" / big).samefile(tmp_path / "2" / big)  # linked, not written again
    restored, _report = _restore(second)
    assert restored["v7"] == "seven" and restored["v299"] == 299 and len(restored["big"]) == 50_000


class Payload:
    """A pickle that runs code when loaded: writes the file `proof`."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.proof)!r}, 'w').write('ran')",))


def test_a_file_that_does_not_match_its_index_is_not_loaded(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    index = _capture(namespace, "x = 41", tmp_path / "1", None)
    files = json.loads(index.read_text())["files"]
    (variables,) = [
        tmp_path / "1" / file for file, entry in files.items() if entry["names"] == ["x"]
    ]
    proof = tmp_path / "ran"
    variables.write_bytes(pickle.dumps(Payload(proof)))
    restored, report = _restore(index)
    assert "does not match" in report["refused"] and "x" not in restored
    assert not proof.exists()


def test_an_index_that_does_not_match_its_digest_is_not_read(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    index = _capture(namespace, "x = 41", tmp_path / "1", None)
    restored, report = _restore(index, expected="0" * 64)
    assert "recorded digest" in report["refused"] and "x" not in restored


def test_a_previous_index_that_does_not_match_its_digest_links_nothing(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    first = _capture(namespace, "big = list(range(1000))", tmp_path / "1", None)
    files = kernel_snapshot.previous_files(str(first), "0" * 64)
    assert files == {}
    assert kernel_snapshot.previous_files(str(tmp_path / "missing.json"), "0" * 64) == {}


def _restore_for(index: Path, codes: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    report = index.parent / "restore.json"
    sha256 = hashlib.sha256(index.read_bytes()).hexdigest()
    kernel_snapshot.restore(namespace, str(index), str(report), sha256, codes)
    return namespace, json.loads(report.read_text())


def test_a_restore_loads_only_what_the_blocks_after_it_read(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    # (`big` is large enough for a file of its own: small variables share one.)
    code = (
        "big = list(range(100_000))\nsmall = 2\ndef total():\n    return helper + small\nhelper = 1"
    )
    index = _capture(namespace, code, tmp_path / "1", None)
    restored, report = _restore_for(index, ["print(total())"])
    # What total() uses, transitively.
    assert set(restored) - {"__name__"} == {"total", "helper", "small"}
    assert report["deferred"] == ["big"]
    # Code the analysis cannot follow loads everything.
    restored, report = _restore_for(index, ["print(total())", "print(globals()['big'])"])
    assert "big" in restored and report["deferred"] == []


def test_the_digest_after_a_partial_restore_equals_a_full_one(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    index = _capture(namespace, "big = list(range(100_000))\nsmall = 2", tmp_path / "1", None)
    after: dict[str, str] = {}
    for codes in (["print(small)"], None):
        restored, _report = _restore_for(index, codes)
        kernel_state._executions_since_capture[0] = 3
        code = "small = small + 1"
        kernel_state._note_cell_start(types.SimpleNamespace(raw_cell=code))
        exec(code, restored)
        folder = tmp_path / ("partial" if codes else "full")
        folder.mkdir()
        report = folder / "state.json"
        sha256 = hashlib.sha256(index.read_bytes()).hexdigest()
        snapshot = folder / "_snapshot.json"
        kernel_state.capture(
            restored, {"__builtins__"}, str(report), str(snapshot), previous_snapshot=str(index),
            previous_sha256=sha256,
        )  # fmt: skip
        after[folder.name] = json.loads(report.read_text())["digest"]
    assert after["partial"] == after["full"]
    # The snapshot taken after the partial restore holds the deferred variable too (linked).
    full, _report = _restore_for(tmp_path / "partial" / "_snapshot.json", None)
    assert full["big"] == list(range(100_000)) and full["small"] == 3


def _with_an_older_snapshot(build: Build) -> None:
    """A block's realization as mdrun wrote it before snapshots were per variable."""
    folder = build_outpath(build)
    (folder / "outputs.json").write_text('{"outputs": [], "key": "k"}')
    (folder / "_snapshot.pickle").write_bytes(pickle.dumps({"x": 41}))


def test_a_snapshot_of_an_earlier_mdrun_is_read_as_none(store: Store) -> None:
    def stage(registry: Registry) -> DRef:
        wrapper = build_wrapper(_with_an_older_snapshot)
        return mkdrv(registry, {"name": "block"}, match_only(), wrapper)

    rref = realize1(instantiate(stage))
    result = read_result(store, rref)
    assert result.snapshot is None  # the session replays instead of loading it
    assert result.key == "k"


def test_variables_whose_sharing_is_unknown_are_pickled_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A value whose pickle goes through too many objects keeps no record of them: whether it
    # shares one with another variable is unknown, so all go in one file.
    monkeypatch.setattr(kernel_digest, "MEMO_LIMIT", 3)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    code = "rows = [[1], [2], [3], [4]]\nfirst = rows[0]\nother = [5]"
    index = _capture(namespace, code, tmp_path / "1", None)
    groups = [entry["names"] for entry in json.loads(index.read_text())["files"].values()]
    assert any({"first", "other", "rows"} <= set(group) for group in groups)
    restored, _report = _restore(index)
    restored["first"].append(9)
    assert restored["rows"][0] == [1, 9]


def test_an_automatic_snapshot_is_taken_only_when_it_saves_enough(tmp_path: Path) -> None:
    # Loading this state back is made to cost 2 s: right after a snapshot that costs as much
    # to load (replay_cost about 2 s), a new one saves nothing; after 3 s of replaying, it does.
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("data = list(range(100))", namespace)
    taken = {}
    for replay_cost in (2.05, 3.0):
        folder = tmp_path / str(replay_cost)
        folder.mkdir()
        kernel_state._executions_since_capture[0] = 5
        size_probe = folder / "probe.json"
        kernel_state.capture(namespace, {"__builtins__"}, str(size_probe), None)
        size = json.loads(size_probe.read_text())["size"]
        kernel_state._cell_started[:] = [time.perf_counter()]  # this block took no time
        kernel_state.capture(
            namespace, {"__builtins__"}, str(folder / "state.json"), str(folder / "_snapshot.json"),
            replay_cost=replay_cost, snapshot_after=0.25, load_bytes_per_second=size / 2.0,
        )  # fmt: skip
        taken[replay_cost] = (folder / "_snapshot.json").exists()
    assert taken == {2.05: False, 3.0: True}


def test_an_automatic_snapshot_must_pay_for_writing_what_it_does_not_link(
    tmp_path: Path,
) -> None:
    # Loading saves 1 s over replaying; writing `big` would cost 2 s, on this run's critical
    # path: not taken. Once a snapshot holds `big`, a new one links it and writes only `small`.
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("big = list(range(100_000))\nsmall = 1", namespace)
    kernel_state._executions_since_capture[0] = 5
    probe = tmp_path / "probe.json"
    kernel_state.capture(namespace, {"__builtins__"}, str(probe), None)
    size = json.loads(probe.read_text())["size"]

    def capture(folder: Path, previous: Path | None) -> bool:
        folder.mkdir()
        sha256 = None if previous is None else hashlib.sha256(previous.read_bytes()).hexdigest()
        kernel_state._executions_since_capture[0] = 5
        kernel_state._cell_started[:] = [time.perf_counter()]
        kernel_state.capture(
            namespace, {"__builtins__"}, str(folder / "state.json"),
            str(folder / "_snapshot.json"), replay_cost=3.0, snapshot_after=0.25,
            load_bytes_per_second=size / 2.0, write_bytes_per_second=size / 2.0,
            previous_snapshot=None if previous is None else str(previous),
            previous_sha256=sha256,
        )  # fmt: skip
        return (folder / "_snapshot.json").exists()

    assert not capture(tmp_path / "alone", None)
    first = _capture(namespace, "small = 2", tmp_path / "first", None)  # always taken
    assert capture(tmp_path / "linked", first)
    record = json.loads((tmp_path / "linked" / "state.json").read_text())
    assert record["snapshot_linked"] > record["snapshot_written"]


FIRST_BLOCK = """\
import numpy
from dataclasses import dataclass
@dataclass
class Point:
    x: float
    def __setstate__(self, state):
        self.__dict__.update(state)
kept = {"zeros": numpy.zeros(3), "points": [Point(1)]}
"""
LATER_BLOCK = "kept['ones'] = numpy.ones(2)\nkept['points'].append(Point(2))\nmore = Point(3)"


def test_values_loaded_from_a_snapshot_and_made_later_digest_as_before_the_snapshot(
    tmp_path: Path,
) -> None:
    """Values partly loaded from a snapshot and partly made by a later block digest as they do
    in the session the snapshot was taken of. A pickle holds an object it met before by
    reference: a loaded array's dtype, a loaded class's names, a loaded object's attribute
    names, each a copy where that session shares one object, made them digest differently,
    and no block after such a state was kept by the early cutoff."""
    session: dict[str, Any] = {"__name__": "__main__"}
    restored, report = _restore(_capture(session, FIRST_BLOCK, tmp_path / "1", None))
    assert "refused" not in report
    for namespace in (session, restored):
        exec(compile(LATER_BLOCK, "<block>", "exec"), namespace)
    for name in ("kept", "more", "Point"):
        assert kernel_digest.value_digest(restored[name]) == kernel_digest.value_digest(
            session[name]
        ), name


def test_equal_strings_digest_alike_whether_one_object_or_two() -> None:
    """Which equal strings are one object is Python's business (a name in code, a string
    loaded from a snapshot): a digest does not depend on it, and writes a repeated string
    once."""
    text = "".join(["ab"] * 3)
    assert kernel_digest.value_digest(["ababab", "ababab"]) == kernel_digest.value_digest(
        ["ababab", text]
    )
    large = "x" * 1_000_000
    _digest, size = kernel_digest.value_digest([large] * 20)
    assert size < 2 * len(large)


def test_two_lists_that_were_one_are_not_linked_as_one(tmp_path: Path) -> None:
    """Two small groups packed in one file (`a`, `b` two lists) and one group (`a is b`)
    once had the same file name: a snapshot after `b = []` linked the file of the snapshot
    before it, and its restore gave `a is b` back."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    first = _capture(namespace, "a = []\nb = a", tmp_path / "1", None)
    second = _capture(namespace, "b = []", tmp_path / "2", first)
    restored, _report = _restore(second)
    restored["a"].append(1)
    assert restored["b"] == []


def test_names_bound_to_one_list_a_partial_restore_left_unloaded_count_as_aliases(
    tmp_path: Path,
) -> None:
    """The state's digest counts the aliases among the variables a partial restore did not
    load: without them, it was the digest of a state where `a` and `b` are two lists."""
    code = "a = list(range(100_000))\nb = a\nsmall = 2"
    index = _capture({"__name__": "__main__"}, code, tmp_path / "1", None)
    after: dict[str, Any] = {}
    for codes in (["print(small)"], None):
        restored, report = _restore_for(index, codes)
        assert report["deferred"] == (["a", "b"] if codes else [])
        kernel_state._executions_since_capture[0] = 3
        kernel_state._note_cell_start(types.SimpleNamespace(raw_cell="small = 3"))
        exec("small = 3", restored)
        record = tmp_path / ("partial" if codes else "full") / "state.json"
        record.parent.mkdir()
        kernel_state.capture(restored, {"__builtins__"}, str(record), None)
        after[record.parent.name] = json.loads(record.read_text())
    assert after["partial"]["digest"] == after["full"]["digest"]
    assert after["partial"]["aliases"] == after["full"]["aliases"]
    [group] = after["partial"]["aliases"]
    assert kernel_state.group_names(group) == ["a", "b"]


def test_a_function_changed_beside_the_variable_it_uses_counts_their_file_as_written(
    tmp_path: Path,
) -> None:
    """A function shares its snapshot file with the variables it uses (loading it puts their
    values back): the choice to take a snapshot counts that whole file as written when the
    function changed, not only the function's few bytes."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    kernel_digest.use_namespace(namespace)
    code = "x = list(range(50_000))\ndef g():\n    return len(x)\nsmall = [1]"
    index = _capture(namespace, code, tmp_path / "1", None)
    sha256 = hashlib.sha256(index.read_bytes()).hexdigest()
    exec("def g():\n    return len(x) + 1", namespace)
    values = {name: kernel_digest.digest_value(namespace[name]) for name in ("x", "g", "small")}
    reaches = {name: kernel_digest.digest_and_reach(namespace[name])[2] for name in values}
    grouped = kernel_snapshot.groups(sorted(values), reaches)
    assert ["g", "x"] in grouped
    assert kernel_snapshot.linked_bytes(sha256, values, {}, grouped) == values["small"][1]


def test_variables_that_share_memory_through_a_numpy_view_are_not_snapshotted(
    tmp_path: Path,
) -> None:
    """A pickle writes what a view shows, not the array it views: loaded, `v` would be an
    array of its own, and `v[0] = 99` would no longer change `a`. Such a state is replayed,
    and the record says why."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    index = _capture(
        namespace, "import numpy as np\na = np.arange(10)\nv = a[2:5]", tmp_path / "1", None
    )
    assert not index.exists()
    record = json.loads((tmp_path / "1" / "state.json").read_text())
    assert "a, v: memory shared through a numpy view" in record["snapshot_skipped"]
