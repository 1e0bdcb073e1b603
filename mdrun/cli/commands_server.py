"""`mdrun server status|start|stop`: the user's mdrun servers (see `mdrun.server`), for users,
tests and benchmarks. `run` and `check` use a server by themselves; these commands never run a
document."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING

from mdrun.cli.common import EXIT_OK, CommandParser
from mdrun.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from mdrun.cli.common import Commands
    from mdrun.server.control import ServerStatus


def add_server_command(commands: Commands) -> None:
    """`mdrun server status|start|stop`."""
    parser = commands.add_parser(
        "server",
        help="the mdrun server that runs `run` and `check` with warm kernels: status, start, stop",
        description="`mdrun run` and `mdrun check` are run by a per-user server that keeps "
        "mdrun imported and kernels warm; it starts on first use and exits after "
        "$MDRUN_SERVER_IDLE_SECONDS (600) without work. Turn it off with --no-server, "
        "MDRUN_SERVER=off or `server = false` under [tool.mdrun] in pyproject.toml; it is off "
        "when $CI is set, unless MDRUN_SERVER=on.",
    )
    parser.set_defaults(handler=command_server)
    actions = parser.add_subparsers(
        dest="server_command", metavar="SERVER_COMMAND", parser_class=CommandParser
    )
    actions.add_parser("status", help="list the servers that run, their kernels and requests")
    actions.add_parser("start", help="start this environment's server now and wait until ready")
    actions.add_parser("stop", help="stop every server (their kernels end with them)")


def command_server(arguments: argparse.Namespace) -> int:
    """Carry out `mdrun server ACTION`."""
    from mdrun.server import control
    from mdrun.server.address import FolderError
    from mdrun.server.settings import SettingError, idle_seconds

    action = arguments.server_command
    if action is None:
        raise UsageError("server: status, start or stop is needed")
    try:
        folder = control.server_folder(os.environ)
        if action == "status":
            return _print_status(control.servers(folder), control.status_of(os.environ))
        if action == "stop":
            for server in control.stop_all(folder):
                print(f"mdrun: stopped the server with pid {server.pid}", file=sys.stderr)
            return EXIT_OK
        server = control.start_and_wait(os.environ, idle_seconds(os.environ))
    except (FolderError, SettingError) as err:
        raise ConfigError(str(err)) from None
    except TimeoutError as err:
        raise ConfigError(f"server start: {err}") from None
    print(f"mdrun: the server for this environment runs (pid {server.pid})", file=sys.stderr)
    return EXIT_OK


def _print_status(found: list[ServerStatus], own: ServerStatus | None) -> int:
    if not found:
        print("no mdrun server runs")
        return EXIT_OK
    for server in found:
        details = server.details
        up = time.time() - float(details["started"])
        kernels = ", ".join(str(pid) for pid in server.kernels) or "none"
        mark = " (this environment's)" if own is not None and own.pid == server.pid else ""
        print(
            f"pid {server.pid}{mark}: up {up:.0f} s, {server.requests} requests, "
            f"{'busy' if details['busy'] else 'idle for ' + str(details['idle_for']) + ' s'} "
            f"(exits after {details['idle_seconds']:.0f} s idle), kernels kept: {kernels}; "
            f"{details['executable']}, mdrun {details['version']}"
        )
    return EXIT_OK
