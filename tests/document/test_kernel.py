"""The kernel layer: resolution, one session's outputs, failures, and no orphan kernels."""

from __future__ import annotations

import base64
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mdrun.document import kernel as kernel_module
from mdrun.document import kernel_client, kernel_process
from mdrun.document.kernel import KernelSession, ReplayedBlock
from mdrun.document.kernel_client import POLL_SECONDS
from mdrun.document.kernels import DEFAULT_PYTHON_KERNEL, KernelChoice, resolve_kernel
from mdrun.errors import KernelError, KernelNotFound

pytestmark = pytest.mark.kernel

PYTHON = resolve_kernel("python", None)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelSession]:
    """One kernel shared by the tests that leave it usable, since starting one costs time."""
    with KernelSession(PYTHON, tmp_path_factory.mktemp("document")) as shared:
        yield shared


@pytest.fixture
def fresh_session(tmp_path: Path) -> Iterator[KernelSession]:
    with KernelSession(PYTHON, tmp_path) as fresh:
        yield fresh


def traceback_text(session: KernelSession, code: str, block_id: str) -> str:
    result = session.execute(code, block_id=block_id)
    assert result.status == "error"
    error = result.error
    assert error is not None
    traceback = error["traceback"]
    assert isinstance(traceback, list)
    return "\n".join(str(line) for line in traceback)


# -- resolution ---------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["python", "Python", "py", "python3", "ipython"])
def test_python_runs_in_mdrun_interpreter(language: str) -> None:
    choice = resolve_kernel(language, None)
    assert choice.name == DEFAULT_PYTHON_KERNEL
    assert choice.argv[:3] == (sys.executable, "-m", "ipykernel_launcher")
    assert "{connection_file}" in choice.argv


def test_explicit_kernel_name_uses_installed_kernelspec() -> None:
    choice = resolve_kernel("python", "python3")
    assert choice.name == "python3"
    assert choice.language == "python"


def test_missing_language_raises_kernel_not_found() -> None:
    with pytest.raises(KernelNotFound, match="no-such-language") as caught:
        resolve_kernel("no-such-language", None)
    assert "install" in str(caught.value)


def test_missing_kernel_name_raises_kernel_not_found() -> None:
    with pytest.raises(KernelNotFound, match="no-such-kernel"):
        resolve_kernel("python", "no-such-kernel")


def test_importing_the_evaluator_imports_no_kernel_machinery() -> None:
    """A fully cached run must not pay for jupyter_client, zmq and nbformat."""
    modules = [
        "mdrun.errors",
        "mdrun.document",
        "mdrun.document.kernels",
        "mdrun.document.kernel",
        "mdrun.document.kernel_process",
        "mdrun.document.kernel_client",
        "mdrun.document.kernel_outputs",
    ]
    machinery = ("jupyter_client", "zmq", "nbformat")
    script = textwrap.dedent(
        f"""
        import importlib, importlib.util, sys
        for name in {modules!r} + ["mdrun.document.parse", "mdrun.document.render"]:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {machinery!r})
        print(" ".join(loaded))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == ""


# -- outputs ------------------------------------------------------------------------------------


def test_stdout_and_stderr_stay_separate(session: KernelSession) -> None:
    code = "import sys\nprint('one')\nprint('two', file=sys.stderr)\nprint('three')"
    result = session.execute(code, block_id="streams")
    assert result.status == "ok"
    # ipykernel buffers each stream on its own and flushes them on timers, so
    # the order between the two streams is not defined; each stream's is.
    by_name = sorted(result.outputs, key=lambda output: str(output["name"]))
    assert by_name == [
        {"output_type": "stream", "name": "stderr", "text": "two\n"},
        {"output_type": "stream", "name": "stdout", "text": "one\nthree\n"},
    ]


def test_last_expression_is_execute_result_without_count(session: KernelSession) -> None:
    result = session.execute("6 * 7", block_id="answer")
    assert result.outputs == (
        {"output_type": "execute_result", "data": {"text/plain": "42"}, "metadata": {}},
    )


def test_html_and_markdown_are_display_data(session: KernelSession) -> None:
    code = (
        "from IPython.display import HTML, Markdown, display\n"
        "display(HTML('<b>bold</b>'))\n"
        "display(Markdown('# Title'))"
    )
    result = session.execute(code, block_id="rich")
    assert [output["output_type"] for output in result.outputs] == ["display_data"] * 2
    html, markdown = (output["data"] for output in result.outputs)
    assert isinstance(html, dict)
    assert isinstance(markdown, dict)
    assert html["text/html"] == "<b>bold</b>"
    assert markdown["text/markdown"] == "# Title"


def tiny_png() -> bytes:
    """A 1x1 grey PNG, built by hand so that no imaging library is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + checksum

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x80")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_image_is_display_data_in_base64(session: KernelSession) -> None:
    png = tiny_png()
    code = f"from IPython.display import Image\nImage(data={png!r})"
    result = session.execute(code, block_id="image")
    (output,) = result.outputs
    data = output["data"]
    assert isinstance(data, dict)
    encoded = data["image/png"]
    assert isinstance(encoded, str)
    assert base64.b64decode(encoded) == png


def test_updated_display_shows_its_last_value(session: KernelSession) -> None:
    code = "handle = display('first', display_id=True)\nhandle.update('second')"
    result = session.execute(code, block_id="update")
    (output,) = result.outputs
    assert output["data"] == {"text/plain": "'second'"}


def test_clear_output_drops_earlier_outputs(session: KernelSession) -> None:
    code = (
        "from IPython.display import clear_output\n"
        "print('gone')\nclear_output(wait=True)\nprint('kept')"
    )
    result = session.execute(code, block_id="clear")
    assert result.outputs == ({"output_type": "stream", "name": "stdout", "text": "kept\n"},)


def test_silence_does_not_truncate_output(session: KernelSession) -> None:
    """A quiet block is waited for: only the idle status, a timeout or death end the wait.

    The session has no silence timeout to exceed (it polls every `POLL_SECONDS` only to notice a
    dead kernel), so a pause of many poll intervals makes the point without an 11 s test.
    """
    pause = 30 * POLL_SECONDS
    code = f"import time\nprint('before', flush=True)\ntime.sleep({pause})\nprint('after')"
    result = session.execute(code, block_id="quiet")
    assert result.outputs == (
        {"output_type": "stream", "name": "stdout", "text": "before\nafter\n"},
    )
    assert result.seconds >= pause


def test_blocks_see_their_input_history_and_stay_out_of_the_users_ipython_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mdrun's kernel keeps IPython's history in memory (an SQLite write per block cost
    # milliseconds): blocks still see `In`, and the user's history database is not touched.
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    with KernelSession(PYTHON, tmp_path) as session:
        session.execute("answer = 6 * 7", block_id="first")
        result = session.execute("print(In[-2])\n%history -n 1", block_id="second")
    assert result.outputs[0]["text"] == "answer = 6 * 7\n   1: answer = 6 * 7\n"
    assert not list((tmp_path / "ipython").rglob("history.sqlite"))


def test_kernel_runs_in_the_given_directory(tmp_path: Path) -> None:
    with KernelSession(resolve_kernel("python", "python3"), tmp_path) as session:
        result = session.execute("import os\nprint(os.getcwd())", block_id="cwd")
    assert result.outputs[0]["text"] == f"{tmp_path}\n"


def test_language_info_has_a_version(session: KernelSession) -> None:
    info = session.language_info()
    assert info["name"] == "python"
    assert info["version"].count(".") == 2
    assert PYTHON.known_language_info() == info


def test_silent_replay_keeps_state_but_no_outputs(session: KernelSession) -> None:
    result = session.execute("replayed = 5\nprint('noise')\nreplayed", block_id="r", silent=True)
    assert (result.status, result.outputs) == ("ok", ())
    assert session.execute("replayed", block_id="check").outputs[0]["data"] == {"text/plain": "5"}


def test_silent_replay_reports_errors(session: KernelSession) -> None:
    result = session.execute("print('noise')\nraise ValueError('bad')", block_id="r", silent=True)
    assert result.status == "error"
    assert [output["ename"] for output in result.outputs] == ["ValueError"]


def test_a_pipelined_replay_runs_every_block_in_order_keeping_only_errors(
    fresh_session: KernelSession,
) -> None:
    """Requests sent ahead (more than one window of them) run one after another, in order,
    as separate requests would: each block sees what the one before it left."""
    count = kernel_module.REPLAY_WINDOW + 6
    blocks = [ReplayedBlock("order = [] ", "r0")] + [
        ReplayedBlock(f"order.append({index})\nprint('noise')", f"r{index}")
        for index in range(1, count)
    ]
    results, in_flight = fresh_session.replay(blocks)
    assert in_flight == 0 and len(results) == count
    assert all((result.status, result.outputs) == ("ok", ()) for result in results)
    shown = fresh_session.execute(f"order == list(range(1, {count}))", block_id="check")
    assert shown.outputs[0]["data"] == {"text/plain": "True"}


def test_a_pipelined_replay_stops_at_a_failure_and_the_blocks_after_it_do_not_run(
    fresh_session: KernelSession, tmp_path: Path
) -> None:
    """A block that raises where it may not: the blocks sent after it are aborted (a block's
    side effects, as a file it writes, are what a user would see), unless raising was its
    accepted outcome (`allow_error`), after which the replay goes on."""
    marker = tmp_path / "ran"
    blocks = [
        ReplayedBlock("x = 1", "r1"),
        ReplayedBlock("raise KeyError('expected')", "r2", may_raise=True),
        ReplayedBlock("x = 2", "r3"),
        ReplayedBlock("raise ValueError('not expected')", "r4"),
        ReplayedBlock(f"open({str(marker)!r}, 'w').close()", "r5"),
        ReplayedBlock("x = 3", "r6"),
    ]
    results, in_flight = fresh_session.replay(blocks)
    assert [result.status for result in results] == ["ok", "error", "ok", "error"]
    assert results[-1].error is not None and results[-1].error["ename"] == "ValueError"
    assert in_flight == 2
    time.sleep(0.5)  # (what the kernel would do with the requests in flight, it does now)
    assert not marker.exists()
    assert fresh_session.execute("x", block_id="check").outputs[0]["data"] == {"text/plain": "2"}


def test_a_malformed_output_from_the_kernel_fails_the_block(session: KernelSession) -> None:
    """nbformat checks every output: one it refuses is an error, never stored as a result."""
    code = (
        "kernel = get_ipython().kernel\n"
        "content = {'data': {'text/plain': 3}, 'metadata': {}}\n"
        "kernel.session.send(kernel.iopub_socket, 'display_data', content,"
        " kernel.get_parent('shell'))\n"
        "print('after')"
    )
    result = session.execute(code, block_id="malformed")
    assert result.status == "error"
    assert result.error is not None
    assert result.error["ename"] == "KernelProtocolError"
    assert "malformed display_data message" in str(result.error["evalue"])
    assert result.outputs[-1] == {"output_type": "stream", "name": "stdout", "text": "after\n"}


# -- errors -------------------------------------------------------------------------------------

FAILING_BLOCKS = {
    "runtime": "def helper():\n    return 1 / 0\n\nhelper()",
    "syntax": "x = 1\ny = (\n",
}


@pytest.mark.parametrize("kind", sorted(FAILING_BLOCKS))
def test_traceback_does_not_depend_on_history(
    kind: str, session: KernelSession, fresh_session: KernelSession
) -> None:
    code = FAILING_BLOCKS[kind]
    first = fresh_session.execute(code, block_id="fails")
    for number in range(5):
        session.execute(f"value_{number} = {number}", block_id=f"warm-up-{number}")
    later = session.execute(code, block_id="fails")
    assert first.outputs == later.outputs
    assert first.status == later.status == "error"


def test_traceback_names_block_and_line(session: KernelSession) -> None:
    text = traceback_text(session, FAILING_BLOCKS["runtime"], "divide")
    assert "Block divide, line 4" in text
    assert "Block divide, line 2, in helper()" in text
    assert "\x1b" not in text
    for varying in ("Cell In", "In [", "ipykernel_", "/tmp/"):
        assert varying not in text


def test_syntax_error_names_block_and_line(session: KernelSession) -> None:
    text = traceback_text(session, FAILING_BLOCKS["syntax"], "unclosed")
    assert "Block unclosed, line 2" in text
    assert "SyntaxError" in text


def test_timeout_interrupts_and_session_keeps_working(session: KernelSession) -> None:
    session.execute("kept = 41", block_id="before")
    result = session.execute("import time\ntime.sleep(60)", block_id="slow", timeout=0.5)
    assert result.status == "timeout"
    assert result.seconds < 5
    assert result.error is not None
    assert "interrupted after 0.5 s" in str(result.error["evalue"])
    assert session.alive
    after = session.execute("print(kept + 1)", block_id="after")
    assert after.outputs == ({"output_type": "stream", "name": "stdout", "text": "42\n"},)


def test_kernel_that_ignores_interrupt_is_stopped(
    fresh_session: KernelSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_module, "INTERRUPT_GRACE_SECONDS", 1.0)
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    result = fresh_session.execute(code, block_id="stubborn", timeout=0.5)
    assert result.status == "timeout"
    assert result.error is not None
    assert "restarted" in str(result.error["evalue"])
    assert not fresh_session.alive
    fresh_session.restart()
    assert fresh_session.execute("1", block_id="again").status == "ok"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import os\nos._exit(3)", "exit code 3"),
        ("import ctypes\nctypes.string_at(0)", "SIGSEGV"),
    ],
)
def test_dying_kernel_is_reported_quickly(
    fresh_session: KernelSession, code: str, reason: str
) -> None:
    result = fresh_session.execute(code, block_id="fatal", timeout=60)
    assert result.status == "died"
    assert result.seconds < 3
    assert result.error is not None
    assert reason in str(result.error["evalue"])
    assert not fresh_session.alive
    with pytest.raises(KernelError):
        fresh_session.execute("1", block_id="after")
    fresh_session.restart()
    assert fresh_session.execute("print('back')", block_id="back").status == "ok"


def test_close_is_idempotent(tmp_path: Path) -> None:
    session = KernelSession(PYTHON, tmp_path)
    with session:
        pid = session.pid
    session.close()
    assert pid is not None
    assert not session.alive
    assert not is_running(pid)
    with pytest.raises(KernelError):
        session.execute("1", block_id="closed")


def test_kernel_that_cannot_start_raises_kernel_error(tmp_path: Path) -> None:
    choice = KernelChoice("broken", "python", ("/no/such/kernel", "{connection_file}"), "broken")
    with pytest.raises(KernelError, match="cannot run"):
        KernelSession(choice, tmp_path).start()


def test_kernel_that_never_answers_times_out(tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "import time; time.sleep(60)", "{connection_file}")
    session = KernelSession(
        KernelChoice("mute", "python", argv, "mute"), tmp_path, startup_timeout=1
    )
    with pytest.raises(KernelError, match="did not answer within 1 s"):
        session.start()
    assert not session.alive


# -- no orphans ---------------------------------------------------------------------------------


def is_running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody reaps counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def assert_dies_with_parent(script: str, *arguments: str) -> None:
    """Run `script`, which prints a child's pid, SIGKILL it, and expect that child to go."""
    parent = subprocess.Popen(
        [sys.executable, "-c", script, *arguments], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert is_running(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 5
    while is_running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_running(child)


def test_no_orphan_kernel_after_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from mdrun.document.kernel import KernelSession, ReplayedBlock
        from mdrun.document.kernels import resolve_kernel
        session = KernelSession(resolve_kernel("python", None), sys.argv[1])
        session.start()
        print(session.pid, flush=True)
        time.sleep(120)
        """
    )
    assert_dies_with_parent(script, str(tmp_path))


START_CHILD = """
import subprocess
child = subprocess.Popen(["sleep", "300"])
print(child.pid, flush=True)
"""
"""A block that starts a process and leaves it running; it prints the process's pid."""


def started_child(result: kernel_module.ExecutionResult) -> int:
    """The pid a block running START_CHILD printed."""
    stream = result.outputs[0]
    assert stream["output_type"] == "stream", result.outputs
    return int(str(stream["text"]).split()[0])


def assert_gone(pid: int, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_running(pid), f"process {pid} outlived its kernel"


def test_a_child_of_a_block_dies_with_a_kernel_killed_after_its_timeout(
    fresh_session: KernelSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_module, "INTERRUPT_GRACE_SECONDS", 0.5)
    code = START_CHILD + "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    result = fresh_session.execute(code + "time.sleep(60)", block_id="stubborn", timeout=1)
    assert result.status == "timeout"
    assert not fresh_session.alive
    assert_gone(started_child(result))


def test_a_child_of_a_block_dies_when_the_session_closes(tmp_path: Path) -> None:
    with KernelSession(PYTHON, tmp_path) as session:
        child = started_child(session.execute(START_CHILD, block_id="starts"))
        assert is_running(child)
    assert_gone(child)


def test_a_child_of_a_block_dies_when_mdrun_is_sigkilled(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from mdrun.document.kernel import KernelSession, ReplayedBlock
        from mdrun.document.kernels import resolve_kernel
        session = KernelSession(resolve_kernel("python", None), sys.argv[1])
        session.start()
        result = session.execute({START_CHILD!r}, block_id="starts")
        print(result.outputs[0]["text"], flush=True)
        time.sleep(120)
        """
    )
    assert_dies_with_parent(script, str(tmp_path))


@pytest.mark.parametrize("supervise", [False, True], ids=["prctl", "supervisor"])
def test_launched_command_dies_with_parent(supervise: bool) -> None:
    script = textwrap.dedent(
        f"""
        import subprocess, sys, time
        from mdrun.document.kernel_launcher import launcher_argv
        child = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"
        subprocess.Popen(launcher_argv([sys.executable, "-c", child], supervise={supervise}))
        time.sleep(120)
        """
    )
    assert_dies_with_parent(script)


# -- starting ----------------------------------------------------------------------------------


@pytest.mark.kernel
def test_a_kernel_whose_ports_were_taken_meanwhile_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between mdrun choosing free ports and the kernel binding them, another process (another
    kernel starting) may take one: the kernel exits, and mdrun starts it on other ports."""
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    choose = kernel_process.connection_info
    calls: list[int] = []

    def first_port_taken(kernel_name: str) -> dict[str, object]:
        connection = choose(kernel_name)
        if not calls:
            connection["shell_port"] = taken.getsockname()[1]
        calls.append(1)
        return connection

    monkeypatch.setattr(kernel_process, "connection_info", first_port_taken)
    try:
        with KernelSession(PYTHON, tmp_path) as started:
            assert started.execute("print(6 * 7)", block_id="b1").outputs[0]["text"] == "42\n"
    finally:
        taken.close()
    assert len(calls) == 2


@pytest.mark.kernel
@pytest.mark.parametrize("loser", ["kernel", "client"])
def test_a_kernel_whose_ports_another_kernel_took_is_started_on_others(
    loser: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ports are chosen free, then bound by the kernel: many kernels starting at once can take
    each other's. The new kernel's first attempt here meets a running kernel's ports (which has
    a key of its own): either its bind fails ("kernel"), or its client's iopub channel connects
    there and hears the other kernel's messages, signed with another key ("client"). Either way
    the start goes on with other ports, to a kernel of its own."""
    original_info, original_client = kernel_process.connection_info, kernel_client.KernelClient
    chosen: list[dict[str, Any]] = []
    clients: list[dict[str, Any]] = []

    def other_ports(connection: dict[str, Any], names: str = "_port") -> dict[str, Any]:
        return {**connection, **{k: v for k, v in chosen[0].items() if k.endswith(names)}}

    def connection_info(kernel_name: str) -> dict[str, Any]:
        connection = original_info(kernel_name)
        if loser == "kernel" and len(chosen) == 1:
            connection = other_ports(connection)
        chosen.append(connection)
        return connection

    def client(process: Any, connection: dict[str, Any]) -> Any:
        clients.append(connection)
        if loser == "client" and len(clients) == 2:
            connection = other_ports(connection, "iopub_port")
        return original_client(process, connection)

    monkeypatch.setattr(kernel_process, "connection_info", connection_info)
    monkeypatch.setattr("mdrun.document.kernel.KernelClient", client)
    pid = "import os; print(os.getpid())"
    with KernelSession(PYTHON, tmp_path) as other:
        other_pid = other.execute(pid, block_id="pid").outputs[0]["text"]
        # The other kernel keeps publishing, as a busy one does, while the new one starts.
        chatter = textwrap.dedent(
            """
            import threading, time
            def chatter():
                for _ in range(3000):
                    print(".", end="", flush=True)
                    time.sleep(0.002)
            threading.Thread(target=chatter, daemon=True).start()
            """
        )
        other.execute(chatter, block_id="chatter")
        with KernelSession(PYTHON, tmp_path) as new:
            new_pid = new.execute(pid, block_id="pid").outputs[0]["text"]
    assert len(chosen) == 3, "the new kernel did not start again on other ports"
    assert new_pid != other_pid
