"""The mdrun server as a user meets it: a real server process, real kernels, the `mdrun`
command through its client. Each test stops its server and checks its kernels are gone
(see `served`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from mdrun.server import control
from tests.server.conftest import Served, wait_until

FIRST = """# A document

```python
x = 20
```

```python
print(x + 1)
```
"""
PID = "\n```python\nimport os\nprint(os.getpid())\n```\n"
SLEEPING = """```python
import os, pathlib, time
pathlib.Path("kernel.pid").write_text(str(os.getpid()))
time.sleep(120)
```
"""


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def _output_of(text: str, block_id: str) -> str:
    region = text.split(f"<!-- mdrun:output id={block_id} -->")[1]
    return region.split("```")[1].removeprefix(" text\n").strip()


@pytest.mark.kernel
def test_a_run_after_an_edit_is_served_by_warm_kernels(served: Served, tmp_path: Path) -> None:
    document = served.documents / "doc.md"
    document.write_text(FIRST)
    first = served.mdrun("run", "doc.md")
    assert first.returncode == 0, first.stderr
    assert served.wait_for_server().requests == 0  # the first run ran in process
    _edit(document, "x + 1", "x + 2")
    second = served.mdrun("run", "doc.md")
    assert second.returncode == 0, second.stderr
    assert served.wait_for_server().requests == 1
    assert "1 executed, 1 cached" in second.stderr
    # The document the server wrote is the one an in-process run from an empty store writes.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "doc.md").write_text(FIRST.replace("x + 1", "x + 2"))
    alone = served.mdrun(
        "run", "doc.md", "--no-server", cwd=fresh, env={"MDRUN_STORE": str(tmp_path / "s2")}
    )
    assert alone.returncode == 0, alone.stderr
    assert document.read_bytes() == (fresh / "doc.md").read_bytes()
    # A block added at the end runs in the kernel the last run left: the same process.
    document.write_text(document.read_text() + PID)
    assert served.mdrun("run", "doc.md").returncode == 0
    document.write_text(document.read_text() + PID.replace("import os\n", ""))
    assert served.mdrun("run", "doc.md").returncode == 0
    text = document.read_text()
    kernel = _output_of(text, "b3")
    assert kernel.isdigit()
    assert _output_of(text, "b4") == kernel
    status = served.wait_for_server()
    assert status.requests == 3
    assert int(kernel) in status.kernels


@pytest.mark.kernel
def test_a_killed_server_is_invisible_and_leaves_no_kernel(served: Served) -> None:
    assert served.mdrun("server", "start").returncode == 0
    document = served.documents / "doc.md"
    document.write_text(FIRST)
    assert served.mdrun("run", "doc.md").returncode == 0
    server = served.wait_for_server()
    assert server.requests == 1
    assert server.kernels
    os.kill(server.pid, signal.SIGKILL)
    for pid in [server.pid, *server.kernels]:
        wait_until(lambda pid=pid: not control.is_running(pid), 20, f"process {pid} to end")
    _edit(document, "x + 1", "x + 3")
    after = served.mdrun("run", "doc.md")
    assert after.returncode == 0, after.stderr
    assert after.stderr.startswith("mdrun: 2 blocks, 1 executed, 1 cached, 0 failed")
    assert _output_of(document.read_text(), "b2") == "23"


def _sleeping_run(served: Served) -> tuple[subprocess.Popen[str], int]:
    """A served run whose block sleeps, and its kernel's pid."""
    assert served.mdrun("server", "start").returncode == 0
    (served.documents / "sleep.md").write_text(SLEEPING)
    client = served.start("run", "sleep.md")
    pid_file = served.documents / "kernel.pid"
    wait_until(lambda: pid_file.exists() and pid_file.read_text().isdigit(), what="the block")
    return client, int(pid_file.read_text())


@pytest.mark.kernel
def test_ctrl_c_is_forwarded_and_a_busy_server_is_bypassed(served: Served) -> None:
    client, kernel = _sleeping_run(served)
    # Meanwhile another command runs in its own process, as fast as without a server.
    (served.documents / "text.md").write_text("# Only text\n")
    other = served.mdrun("run", "text.md")
    assert other.returncode == 0, other.stderr
    status = served.wait_for_server()
    assert (status.requests, status.details["busy"]) == (1, True)
    client.send_signal(signal.SIGINT)
    _out, errors = client.communicate(timeout=60)
    assert client.returncode == 130
    assert errors.strip().endswith("mdrun: interrupted")
    wait_until(lambda: not control.is_running(kernel), 20, "the interrupted kernel to end")
    assert served.wait_for_server().details["busy"] is False
    assert "<!-- mdrun:output" not in (served.documents / "sleep.md").read_text()


@pytest.mark.kernel
def test_a_client_killed_interrupts_its_run(served: Served) -> None:
    client, kernel = _sleeping_run(served)
    client.kill()
    client.wait()
    wait_until(lambda: not control.is_running(kernel), 20, "the orphaned run's kernel to end")
    wait_until(lambda: served.wait_for_server().details["busy"] is False, 20, "the server")


@pytest.mark.kernel
def test_a_server_killed_mid_run_is_retried_in_process(served: Served) -> None:
    """The client runs the command itself; the document is whole, as one run writes it."""
    assert served.mdrun("server", "start").returncode == 0
    server = served.wait_for_server()
    document = served.documents / "sleep.md"
    document.write_text(SLEEPING.replace("time.sleep(120)", "time.sleep(2)\nprint('woke')"))
    client = served.start("run", "sleep.md")
    pid_file = served.documents / "kernel.pid"
    wait_until(lambda: pid_file.exists() and pid_file.read_text().isdigit(), what="the block")
    served_kernel = int(pid_file.read_text())
    os.kill(server.pid, signal.SIGKILL)
    _out, errors = client.communicate(timeout=120)
    assert client.returncode == 0, errors
    assert errors.startswith("mdrun: 1 blocks, 1 executed")  # nothing else was shown
    assert _output_of(document.read_text(), "b1") == "woke"
    assert int(pid_file.read_text()) != served_kernel  # it ran again, in a kernel of its own
    wait_until(lambda: not control.is_running(served_kernel), 20, "the server's kernel to end")


@pytest.mark.kernel
def test_an_idle_server_exits_with_its_kernels(served: Served) -> None:
    idle = {"MDRUN_SERVER_IDLE_SECONDS": "3"}
    assert served.mdrun("server", "start", env=idle).returncode == 0
    (served.documents / "doc.md").write_text(FIRST)
    assert served.mdrun("run", "doc.md", env=idle).returncode == 0
    server = served.wait_for_server()
    assert server.requests == 1
    assert server.kernels
    for pid in [server.pid, *server.kernels]:
        wait_until(lambda pid=pid: not control.is_running(pid), 30, f"process {pid} to end")
    assert not [name for name in served.files() if name.endswith(".sock")]


@pytest.mark.parametrize(
    ("how", "starts_a_server"),
    [
        ({}, True),
        ({"MDRUN_SERVER": "off"}, False),
        ({"argv": "--no-server"}, False),
        ({"pyproject": "server = false"}, False),
        ({"pyproject": "server = false", "MDRUN_SERVER": "on"}, True),
        ({"CI": "true"}, False),
        ({"CI": "true", "MDRUN_SERVER": "on"}, True),
    ],
)
def test_turning_the_server_off(
    served: Served, how: dict[str, str], starts_a_server: bool
) -> None:
    """A run that finds no server starts one (its log appears at once), unless it is off."""
    settings = dict(how)
    (served.documents / "doc.md").write_text("# Only text\n")
    if "pyproject" in settings:
        project = served.documents / "pyproject.toml"
        project.write_text(f"[tool.mdrun]\n{settings['pyproject']}\n")
    extra = [settings.pop("argv")] if "argv" in settings else []
    settings.pop("pyproject", None)
    settings.setdefault("MDRUN_SERVER", "")  # empty: not set
    result = served.mdrun("run", "doc.md", *extra, env=settings)
    assert result.returncode == 0, result.stderr
    assert any(name.endswith(".log") for name in served.files()) is starts_a_server


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"MDRUN_SERVER": "maybe"}, "mdrun: error: $MDRUN_SERVER='maybe': expected on or off"),
        ({"MDRUN_SERVER_IDLE_SECONDS": "soon"}, "expected a number of seconds"),
    ],
)
def test_a_meaningless_setting_is_bad_usage(
    served: Served, setting: dict[str, str], message: str
) -> None:
    (served.documents / "doc.md").write_text("# Only text\n")
    result = served.mdrun("run", "doc.md", env=setting)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_folder_others_can_open_is_refused(served: Served) -> None:
    os.chmod(served.folder, 0o755)
    (served.documents / "doc.md").write_text("# Only text\n")
    result = served.mdrun("run", "doc.md")
    assert result.returncode == 0
    assert f"mdrun: warning: {served.folder}: refused as the mdrun server's folder: others " \
        "may open it (mode 755)" in result.stderr  # fmt: skip
    assert served.files() == []  # no server was started there
    status = served.mdrun("server", "status")
    assert status.returncode == 2
    assert "refused as the mdrun server's folder" in status.stderr


BAD = "# Bad\n\n```python timeout=soon\nprint(1)\n```\n"


COMMANDS = (
    ["run", "bad.md"],
    ["run", "missing.md"],
    ["check", "--no-exec", "stale.md"],
    ["run", "stale.md", "--force", "nosuch"],
    ["run", "stale.md", "-o", "-", "--no-such-option"],
)


def test_a_served_command_says_and_exits_as_in_process(served: Served) -> None:
    """Same exit code, same stdout and stderr, through the server and without it."""
    assert served.mdrun("server", "start").returncode == 0
    (served.documents / "bad.md").write_text(BAD)
    (served.documents / "stale.md").write_text(FIRST)
    for args in COMMANDS:
        before = served.wait_for_server().requests
        through_server = served.mdrun(*args)
        assert served.wait_for_server().requests == before + 1
        in_process = served.mdrun(*args, "--no-server")
        assert through_server.returncode == in_process.returncode != 0, args
        assert through_server.stdout == in_process.stdout, args
        assert through_server.stderr == in_process.stderr, args
        if args == COMMANDS[0]:  # bad input: exit 2, with the file and the line
            assert through_server.returncode == 2
            assert through_server.stderr.startswith("mdrun: error: bad.md:3: bad value `soon`")


def test_server_status_and_stop(served: Served) -> None:
    assert "no mdrun server runs" in served.mdrun("server", "status").stdout
    started = served.mdrun("server", "start")
    assert started.returncode == 0, started.stderr
    server = served.wait_for_server()
    status = served.mdrun("server", "status")
    assert f"pid {server.pid} (this environment's): " in status.stdout
    stopped = served.mdrun("server", "stop")
    assert f"stopped the server with pid {server.pid}" in stopped.stderr
    assert not control.is_running(server.pid)
    assert served.status() is None


def test_a_connection_that_says_nothing_holds_up_no_one(served: Served) -> None:
    assert served.mdrun("server", "start").returncode == 0
    server = served.wait_for_server()
    (served.documents / "doc.md").write_text("# Only text\n")
    silent = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(4)]
    try:
        for connection in silent:  # each would hold a server that greets in turn for 5 s
            connection.connect(server.address.socket)
        assert served.mdrun("run", "doc.md").returncode == 0
        assert served.wait_for_server().requests == 1  # served, not run aside after a wait
    finally:
        for connection in silent:
            connection.close()
