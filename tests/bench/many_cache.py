"""The many-documents benchmark's *CI reuse* scenario: a remote cache filled by one store, read
by a fresh one.

One store runs the site cold and pushes what it used (`run site --cache URL --push`, as CI
would); then a fresh store with a fresh copy of the pages (as a new checkout has) runs the site
through the cache (`run site --cache URL`): its time, the blocks it still executed, and the
bytes it fetched, from mdrun's own line ("fetched N realizations ...: X bytes of outputs and
records, Y bytes of snapshots (and Z bytes of manifests and configs)"). The aim: every block
cached, outputs only, no snapshot. The caches: a `file://` folder, and a real S3 server on
127.0.0.1 (moto's server mode, started here as the remote cache's tests start it).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mdrun.core.jsonvalue import JSONObject, JSONValue

from .measure import Measurement, run_commands
from .peers import Command

FETCHED = re.compile(
    r"fetched (\d+) realizations from the cache .*: (\d+) bytes of outputs and records, "
    r"(\d+) bytes of snapshots \(and (\d+) bytes of manifests and configs\)"
)
BLOCKS = re.compile(r"(\d+) blocks?, (\d+) executed")
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True, slots=True)
class RemoteCache:
    """Where the cache is and what a process needs to reach it."""

    name: str
    url: str
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Fetched:
    """What the fresh store's run said it did."""

    blocks: int = 0
    executed: int = 0
    realizations: int = 0
    output_bytes: int = 0
    snapshot_bytes: int = 0
    record_bytes: int = 0


def read_fetched(stderr: str) -> Fetched:
    """The blocks executed (summed over the documents' lines) and the bytes fetched."""
    fetched = Fetched()
    for blocks, executed in BLOCKS.findall(stderr):
        fetched.blocks += int(blocks)
        fetched.executed += int(executed)
    found = FETCHED.search(stderr)
    if found:
        numbers = [int(group) for group in found.groups()]
        fetched.realizations, fetched.output_bytes, fetched.snapshot_bytes = numbers[:3]
        fetched.record_bytes = numbers[3]
    return fetched


def _mdrun(store: Path, cache: RemoteCache, *command: str) -> Command:
    """`mdrun --store STORE COMMAND... site --cache URL` (`run`, `run --push`, `cache push`)."""
    mdrun = str(Path(sys.executable).parent / "mdrun")
    words = [word for word in command if not word.startswith("-")]
    options = [word for word in command if word.startswith("-")]
    argv = [mdrun, "--store", str(store), *words, "site", "--cache", cache.url, *options]
    return Command(argv, env=cache.environment)


def run_ci_reuse(
    caches: list[RemoteCache], write_site: Callable[[Path], None], check: Callable[[Path], str]
) -> list[JSONObject]:
    """Fill the caches from one store, then time a fresh store's run through each.

    The store runs the site cold with `--push` to the first cache, then `mdrun cache push`es it
    to the others (one cold run serves them all). `write_site(folder)` writes the pages into a
    folder; `check(folder)` says what is wrong with them after a run ("" when nothing)."""
    work = Path(tempfile.mkdtemp(prefix="mdrun-bench-ci-"))
    records: list[JSONObject] = []
    try:
        write_site(work / "ci" / "site")
        store = work / "ci" / ".store"
        for index, cache in enumerate(caches):
            if index == 0:
                fill = run_commands([_mdrun(store, cache, "run", "--push")], work / "ci", "fill")
            else:
                fill = run_commands([_mdrun(store, cache, "cache", "push")], work / "ci", "push")
            records.append(_reuse(cache, fill, work / f"fresh-{index}", write_site, check))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return records


def _reuse(
    cache: RemoteCache,
    fill: Measurement,
    fresh: Path,
    write_site: Callable[[Path], None],
    check: Callable[[Path], str],
) -> JSONObject:
    """A fresh store and a fresh copy of the pages, run through the filled cache."""
    write_site(fresh / "site")
    reuse = Measurement(ok=False, detail="not run: the fill failed")
    fetched = Fetched()
    if fill.ok:
        reuse = run_commands([_mdrun(fresh / ".store", cache, "run")], fresh, "reuse")
        fetched = read_fetched((fresh / "reuse.0.err").read_text("utf-8", errors="replace"))
        if reuse.ok:
            problem = check(fresh / "site")
            reuse.ok, reuse.detail = not problem, problem
    print(f"  mdrun CI reuse ({cache.name}): fill {fill.seconds:.1f} s, reuse "
          f"{reuse.seconds:.1f} s, {fetched.executed} executed, {fetched.output_bytes} B "
          f"outputs, {fetched.snapshot_bytes} B snapshots"
          f"{'' if reuse.ok else ' FAILED ' + (reuse.detail or fill.detail)}",
          flush=True)  # fmt: skip
    return {"cache": cache.name, "fill": dict(asdict(fill)), "reuse": dict(asdict(reuse)),
            **asdict(fetched)}  # fmt: skip


@contextmanager
def s3_cache() -> Iterator[RemoteCache]:
    """A bucket on a moto S3 server on a free port of 127.0.0.1, stopped on the way out."""
    import logging
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        client.create_bucket(Bucket="mdrun-bench")
        yield RemoteCache(
            "s3 (moto, 127.0.0.1)",
            "s3://mdrun-bench/cache",
            {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint},
        )
    finally:
        server.stop()


def report_rows(records: list[JSONValue]) -> list[list[str]]:
    """One row per cache: fill and reuse seconds, blocks executed, bytes fetched."""
    rows = []
    for record in records:
        assert isinstance(record, dict)
        fill, reuse = record["fill"], record["reuse"]
        assert isinstance(fill, dict) and isinstance(reuse, dict)

        def seconds(measured: JSONObject) -> str:
            return f"{float(str(measured['seconds'])):.1f} s" if measured["ok"] else "failed"

        rows.append([
            str(record["cache"]), seconds(fill), seconds(reuse),
            f"{record['executed']} of {record['blocks']}", str(record["realizations"]),
            f"{int(str(record['output_bytes'])):,}", f"{int(str(record['snapshot_bytes'])):,}",
            f"{int(str(record['record_bytes'])):,}",
        ])  # fmt: skip
    return rows


REPORT_HEADERS = [
    "cache", "fill", "fresh store, all cached", "blocks executed",
    "realizations fetched", "bytes of outputs and records", "bytes of snapshots",
    "bytes of manifests and configs",
]  # fmt: skip
