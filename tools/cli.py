"""`pong`: one console script, one sub-command per tool.

Each command lives in its own module with `add_parser(subparsers)` and `run(args) -> int`; modules
import their heavy dependencies inside `run`, so `pong --help` and the headless commands never
import pygame.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.metadata
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from tools import exitcodes, stopping
from tools.exitcodes import CommandError
from tools.output import fail, prepare_streams, say

# (command, module under tools/, one-line help); order is the order of `pong --help`.
COMMANDS = (
    ("host", "host", "host a match: wait for one player on a TCP port"),
    ("join", "join", "join a match hosted at HOST:PORT"),
    ("watch", "watch", "watch a match hosted at HOST:PORT, from any moment of it"),
    ("selfplay", "selfplay", "the demo: a bot match between two processes on loopback, verified"),
    ("synctest", "synctest", "re-simulate from saved states every frame and compare chains"),
    ("fuzz", "fuzz", "run the determinism properties as a time-boxed fuzzing campaign"),
    ("bench", "bench", "measure the performance figures"),
    ("replay", "replay", "watch, check or describe a replay: play | verify | info FILE"),
    ("desync", "desync", "find and explain where two recordings diverge"),
    ("netsim", "netsim", "a latency/jitter/throttle TCP proxy for trying bad networks"),
)


class _Parser(argparse.ArgumentParser):
    """argparse, plus the promise of --json: even a usage error ends with one JSON object."""

    json_errors = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No prefixes: `--headl` taken silently as --headless hides typos, and a later option
        # that shares a prefix would change what an old command line means.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        stopping.hold()  # its last words, like a result's, are not cut by a signal
        self.print_usage(sys.stderr)
        fail(_suggest_command(message))
        if _Parser.json_errors:
            say(json.dumps({"ok": False, "error": message, "exit_code": exitcodes.USAGE}))
        raise SystemExit(exitcodes.USAGE)


def _suggest_command(message: str) -> str:
    """argparse's "invalid choice: 'hots'" for a command, with the command that was meant."""
    if message.startswith("argument COMMAND: invalid choice: "):
        typed = message.split("'")[1] if message.count("'") >= 2 else ""
        close = difflib.get_close_matches(typed, [name for name, _, _ in COMMANDS], n=1)
        return f"no command {typed!r}" + (f" (did you mean {close[0]}?)" if close else "; see pong --help")
    return message


def unrecognized(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """What argparse calls "unrecognized arguments", with the option that was probably meant."""
    options = [option for action in parser._actions for option in action.option_strings]
    for extra in extras:
        if extra.startswith("-"):
            typed = extra.split("=", 1)[0]
            close = difflib.get_close_matches(typed, options, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; see {parser.prog} --help"
            return f"unknown option {typed}{hint}"
    return f"unexpected argument{'s' if len(extras) > 1 else ''}: {' '.join(extras)}"


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse like `parse_args`, but an unknown option is reported by the (sub-)command it was given
    to, with that command's usage: `pong host --poits 3` is about `pong host`, not about `pong`."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        command = parser
        while True:
            chosen = [
                action.choices[getattr(args, action.dest)]
                for action in command._actions
                if isinstance(action, argparse._SubParsersAction)
                and isinstance(action.choices, dict)
                and getattr(args, action.dest, None) in action.choices
            ]
            if not chosen:
                break
            command = chosen[0]
        command.error(unrecognized(command, extras))
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pong",
        description="Lockstep Pong: deterministic peer-to-peer Pong with verifiable replays.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(f"tools.{module_name}")
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(run=module.run)
    return parser


def _version() -> str:
    """The package version and the three versions that decide who can play or replay with whom."""
    from lockstep.rules import SIM_VERSION
    from peer.messages import PROTOCOL_VERSION
    from replay.format import FORMAT_VERSION

    try:
        package = importlib.metadata.version("lockstep-pong")
    except importlib.metadata.PackageNotFoundError:
        package = "(not installed)"
    return (
        f"pong {package}: SIM_VERSION {SIM_VERSION}, protocol {PROTOCOL_VERSION}, "
        f"replay format {FORMAT_VERSION}; {_pygame_distribution()}"
    )


def _pygame_distribution() -> str:
    """Which of pygame and pygame-ce provides `import pygame` here (pyproject.toml picks one by
    Python version), read from the installed metadata so that --version stays quick."""
    for name in ("pygame-ce", "pygame"):
        try:
            return f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "pygame not installed"


def main(argv: Sequence[str] | None = None, *, exiting: bool = False) -> int:
    """Run one command; `exiting` when the process ends right after (the `pong` script, see
    tools/entry.py): then stop signals stay ignored from the moment the command is done."""
    prepare_streams()
    _Parser.json_errors = "--json" in (sys.argv[1:] if argv is None else argv)
    # `timeout`, `kill` and a closed terminal end a command the way Ctrl-C does: through its
    # clean-up (selfplay and bench stop their two processes, temporary files go away).
    # host/join put their own handlers over these while they play.
    outer_hold = stopping.held()  # a caller's hold is the caller's to release
    previous: dict[int, object] = {}
    args: argparse.Namespace | None = None
    code: int | None = None
    try:
        previous = stopping.install(stopping.interrupt, stopping.TERMINATION_SIGNALS)
        args = parse(build_parser(), argv)  # imports the commands: Ctrl-C may land here too
        code = int(args.run(args))
        stopping.hold()
    except CommandError as exc:
        stopping.hold()  # the last words must not be cut by a signal either
        return _failed(args, str(exc), exc.code)
    except KeyboardInterrupt:
        stopping.hold()
        if code is not None:
            return code  # the work was done and reported: a late Ctrl-C changes nothing
        return _failed(args, "interrupted", exitcodes.INTERRUPTED)
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`); nothing left to tell anyone.
        sys.stderr.close()
        return exitcodes.OK
    finally:
        if exiting:
            stopping.hold()  # until the process ends (tools/entry.py)
        stopping.restore(previous)
        if not exiting and not outer_hold:
            stopping.release()
    return code


def _failed(args: argparse.Namespace | None, message: str, code: int) -> int:
    """One line for a person; with --json also one JSON object, so scripts always get one."""
    fail(message)
    if getattr(args, "json", _Parser.json_errors):
        say(json.dumps({"ok": False, "error": message, "exit_code": code}))
    return code
