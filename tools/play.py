"""`pong host` and `pong join`: play a match over TCP, headless with a bot or in a window."""

from __future__ import annotations

import argparse
import os
import re
from types import FrameType
from typing import TYPE_CHECKING, Any

from lockstep.bots import BOT_NAMES
from lockstep.engine import MAX_DELAY_FRAMES
from lockstep.rollback import DEFAULT_MAX_ROLLBACK, MAX_ROLLBACK
from lockstep.rules import Rules
from lockstep.state import State
from peer.messages import Netcode, chat_text
from peer.protocol import DEFAULT_PING_INTERVAL_MS, DEFAULT_SILENCE_TIMEOUT_MS, Established, Role, Timeouts
from peer.session import ChatFrontend, Session, SessionOptions, SessionResult, View
from peer.spectators import DEFAULT_SPECTATORS, MAX_SPECTATORS
from peer.transport import format_endpoint
from tools import args as types
from tools import exitcodes, stopping
from tools.args import DEFAULT_PORT, address, port
from tools.exitcodes import CommandError
from tools.output import ERROR_PREFIX, report, say

if TYPE_CHECKING:
    from peer.headless import HeadlessFrontend
    from peer.window import WindowFrontend


def delay(text: str) -> int | None:
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"delay must be 'auto' or a number of frames, not {text!r}"
        ) from None
    if not 0 <= value <= MAX_DELAY_FRAMES:
        raise argparse.ArgumentTypeError(
            f"delay must be between 0 and {MAX_DELAY_FRAMES} frames, not {value}"
        )
    return value


def max_rollback(text: str) -> int:
    return types.int_in(text, 0, MAX_ROLLBACK, "max rollback")


def silence_seconds(text: str) -> int:
    # At least two heartbeat intervals, so a healthy peer that is itself waiting is never dropped.
    return types.int_in(text, 2 * DEFAULT_PING_INTERVAL_MS // 1000, 3600, "timeout")


DEFAULT_RECONNECT_S = 20


def reconnect_seconds(text: str) -> int:
    return types.int_in(text, 0, 3600, "reconnect window")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", help="shared secret both players give (or set PONG_KEY); never sent")
    parser.add_argument(
        "--record", metavar="PATH", help="replay file (default: pong-DATE-TIME-ROLE.replay here)"
    )
    parser.add_argument("--bot", choices=BOT_NAMES, help="let a bot play this side")
    parser.add_argument("--headless", action="store_true", help="no window (needs --bot)")
    parser.add_argument("--fast", action="store_true", help="no 60 Hz pacing: run as fast as inputs arrive")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--name", default="", help="your name as the other player sees it")
    parser.add_argument(
        "--timeout",
        type=silence_seconds,
        default=DEFAULT_SILENCE_TIMEOUT_MS // 1000,
        metavar="SECONDS",
        help=f"give up on a silent peer after this long (default {DEFAULT_SILENCE_TIMEOUT_MS // 1000})",
    )
    parser.add_argument(
        "--reconnect",
        type=reconnect_seconds,
        default=DEFAULT_RECONNECT_S,
        metavar="SECONDS",
        help="when the connection breaks without a goodbye, pause and wait this long for it to come back "
        f"(the joiner redials, the host listens); 0 ends the match at once (default {DEFAULT_RECONNECT_S})",
    )
    parser.add_argument(
        "--max-rollback",
        type=max_rollback,
        default=DEFAULT_MAX_ROLLBACK,
        metavar="FRAMES",
        help=f"under rollback, how far the game may run ahead of the other player's inputs before it "
        f"waits (default {DEFAULT_MAX_ROLLBACK})",
    )
    parser.add_argument(
        "--chat",
        metavar="FILE",
        help="say each line of FILE in the chat, one a second (lines heard are printed)",
    )
    parser.add_argument(
        "--debug-desync-at",
        type=types.frames,
        metavar="FRAME",
        help="debugging aid: perturb this side's state right after FRAME (1 or later; a frame past "
        "the match's end does nothing), to test desync detection",
    )


def add_host_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=port, default=DEFAULT_PORT, help="port to listen on (default 7777; 0 = any)"
    )
    parser.add_argument(
        "--bind",
        type=bind_address,
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 = all)",
    )
    parser.add_argument(
        "--delay",
        type=delay,
        default=None,
        help="input delay in frames, or auto (default: from the RTT; 1-2 frames under rollback)",
    )
    parser.add_argument(
        "--netcode",
        choices=("lockstep", "rollback"),
        default="lockstep",
        help="lockstep (default): every frame waits for both inputs; rollback: predict the other "
        "player's input and re-simulate when it differs (the joiner follows)",
    )
    parser.add_argument("--seed", type=types.seed, help="seed of the match (default: random)")
    parser.add_argument("--points", type=types.points, default=11, help="points to win (default 11)")
    parser.add_argument("--frames", type=types.frames, help="end the match after this many frames")
    parser.add_argument(
        "--spectators",
        type=spectator_limit,
        default=DEFAULT_SPECTATORS,
        metavar="N",
        help=f"how many may watch at once with pong watch (default {DEFAULT_SPECTATORS}; 0: none)",
    )
    parser.add_argument(
        "--resume",
        metavar="REPLAY",
        help="this host crashed mid-match: take its seat back from its REPLAY (start on the same port "
        "within the joiner's --reconnect window)",
    )
    _common(parser)


def spectator_limit(text: str) -> int:
    return types.int_in(text, 0, MAX_SPECTATORS, "spectators")


def add_join_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "address", type=address, metavar="HOST:PORT", help="the host to join (port 7777 when left out)"
    )
    parser.add_argument(
        "--rejoin",
        metavar="REPLAY",
        help="this joiner crashed mid-match: take its seat back from its REPLAY (within the host's "
        "--reconnect window)",
    )
    _common(parser)


def bind_address(text: str) -> str:
    # An empty value (an unset shell variable) would silently listen on every interface.
    if not text.strip():
        raise argparse.ArgumentTypeError("--bind must not be empty; use 0.0.0.0 to listen on all interfaces")
    return text.strip("[]")


def _key(args: argparse.Namespace) -> bytes | None:
    text = args.key if args.key is not None else os.environ.get("PONG_KEY")
    if text is None:
        return None
    if not text:
        where = "--key" if args.key is not None else "PONG_KEY"
        raise CommandError(f"{where} must not be empty (leave it out to play without a key)")
    return os.fsencode(text)  # the bytes typed, even when they are not UTF-8


def _common_options(args: argparse.Namespace) -> dict[str, Any]:
    """The session options of the arguments `_common` adds, alike for host and join."""
    return {
        "key": _key(args),
        "record": args.record,
        "fast": args.fast,
        "name": args.name,
        "debug_desync_at": args.debug_desync_at,
        "max_rollback": args.max_rollback,
        "timeouts": Timeouts(silence_ms=args.timeout * 1000),
        "reconnect_s": args.reconnect,
        "chat": chat_file_lines(args.chat),
    }


MAX_CHAT_FILE_BYTES = 64 * 1024


def chat_file_lines(path: str | None) -> tuple[str, ...]:
    """The lines of a `--chat FILE`, each as chat sends it (empty ones left out)."""
    if path is None:
        return ()
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_CHAT_FILE_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read the chat file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CHAT_FILE_BYTES:
        raise CommandError(f"the chat file {path} is over {MAX_CHAT_FILE_BYTES} bytes")
    lines = (chat_text(line) for line in data.decode("utf-8", errors="replace").splitlines())
    return tuple(line for line in lines if line)


def run_host(args: argparse.Namespace) -> int:
    rules = Rules(points_to_win=args.points, frame_limit=args.frames or 0)
    options = SessionOptions(
        Role.HOST,
        host=args.bind,
        port=args.port,
        delay_frames=args.delay,
        netcode=Netcode[args.netcode.upper()],
        seed=args.seed,
        rules=rules,
        spectators=args.spectators,
        take_seat_from=args.resume,
        **_common_options(args),
    )
    return _play(options, args)


def run_join(args: argparse.Namespace) -> int:
    host, port_number = args.address
    options = SessionOptions(
        Role.JOINER, host=host, port=port_number, take_seat_from=args.rejoin, **_common_options(args)
    )
    return _play(options, args)


def _play(options: SessionOptions, args: argparse.Namespace) -> int:
    if args.headless and not args.bot:
        raise CommandError("--headless needs --bot tracker|random: nobody would be at the keyboard")
    frontend: HeadlessFrontend | WindowFrontend
    if args.headless:
        from peer.headless import HeadlessFrontend

        frontend = HeadlessFrontend(args.bot)
    else:
        from peer.window import WindowFrontend, WindowUnavailable

        try:
            frontend = WindowFrontend(args.bot)
        except WindowUnavailable as exc:
            raise CommandError(f"{exc}; use --headless --bot tracker to play without a window") from None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        frontend.quit = True

    previous = stopping.install(on_signal)
    try:
        worded = _Worded(frontend, options)
        result = worded.word(Session(options, worded, log=_log).run())
        code = exit_code(result)
        # Still under our handlers: a Ctrl-C right at the end must not interrupt the report, and
        # once it is out nothing may change the exit code.
        report(summary(result), result.as_json(), args.json, failed=code != exitcodes.OK)
        stopping.hold()
    finally:
        stopping.restore(previous)
    return code


class _Worded:
    """The front end, but the result it is shown (on the window's end screen) is already in the
    player's words, as the summary line will be."""

    def __init__(self, inner: HeadlessFrontend | WindowFrontend, options: SessionOptions) -> None:
        self.inner = inner
        self.options = options
        self.worded: SessionResult | None = None

    def word(self, result: SessionResult) -> SessionResult:
        if result is not self.worded:
            result.detail = players_words(result, self.options)
            self.worded = result
        return result

    def started(self, established: Established) -> None:
        self.inner.started(established)

    def local_input(self, state: State) -> int:
        return self.inner.local_input(state)

    def show(self, view: View) -> None:
        self.inner.show(view)

    def quit_requested(self) -> bool:
        return self.inner.quit_requested()

    def typed(self) -> str | None:
        return self.inner.typed() if isinstance(self.inner, ChatFrontend) else None

    def heard(self, name: str, text: str) -> None:
        if isinstance(self.inner, ChatFrontend):
            self.inner.heard(name, text)

    def finished(self, result: SessionResult) -> None:
        self.inner.finished(self.word(result))


def exit_code(result: SessionResult) -> int:
    """0 success, 1 a check failed, 2 bad usage or unwritable replay, 3 network (docs/cli.md)."""
    if result.problem == "usage":
        return exitcodes.USAGE
    if result.problem == "network":
        return exitcodes.NETWORK
    if result.result == "finished":
        return exitcodes.OK
    if result.result == "desync":
        return exitcodes.CHECK_FAILED
    if result.result == "quit" and not result.by_remote:
        return exitcodes.OK  # the local player chose to leave
    return exitcodes.NETWORK  # refused, peer gone, timeout, bad data


def _log(line: str) -> None:
    say(line)


def players_words(result: SessionResult, options: SessionOptions) -> str:
    """The detail of a match that never started, in the words of someone who just wants to play:
    what went wrong and what to do. The result code (JSON `result`) stays as it is."""
    detail = result.detail
    if result.input_delay is not None:
        return detail  # a match was played: its own detail says how it ended
    where = format_endpoint(options.host, options.port)
    joiner = options.role is Role.JOINER
    if result.problem == "network" and "already in use" in detail:
        return f"{detail} (another pong host?): use --port 0 to let the system pick a free port"
    if result.problem == "network" and joiner:
        if "cannot resolve" in detail:
            return f"{detail}: check the spelling of the address"
        return f"{detail}: check that `pong host` runs there, and the address and port"
    if not joiner:
        return detail
    if result.result == "auth_failed" and options.take_seat_from is None:  # (a seat's secret: as said)
        return key_words(detail, options.key)
    if result.result == "protocol_error" and "not a Lockstep Pong peer" in detail:
        return f"that is not a pong host: something else answers at {where}"
    if result.result == "handshake_timeout" and result.bytes_received == 0:
        return f"{where} accepted the connection but never answered: that is not a pong host, or it is stuck"
    return detail


def key_words(detail: str, key: bytes | None) -> str:
    """A refused key, in the words of someone who just wants to play or watch."""
    if key is None:
        return "the host uses a key: give the same one with --key or PONG_KEY"
    if "not use a key" in detail:
        return "the host uses no key: leave out --key and PONG_KEY"
    return "wrong key: the host uses a different --key / PONG_KEY"


def summary(result: SessionResult) -> str:
    """One line for a person."""
    where = f"; replay {result.replay}" if result.replay else ""
    if result.report:
        where += f"; report {result.report}"
    chain = f"; final chain {result.final_chain.hex()}" if result.final_chain else ""
    if result.result == "finished":
        mine = result.score_ours_first()
        verdict = "you won" if mine[0] > mine[1] else "you lost" if mine[0] < mine[1] else "a draw"
        note = f" ({result.detail})" if result.detail != "match over" else ""
        return f"finished: {verdict} {mine[0]}-{mine[1]} after {result.frames} frames{note}{chain}{where}"
    if result.result == "desync" and result.desync is not None:
        said = re.search(rf"\bframe {result.desync.frame}\b", result.detail) is not None  # no repeats
        detail = "" if said else f" ({result.detail})"
        return f"desync: the games diverged at frame {result.desync.frame}{detail}{where}"
    if result.input_delay is None:  # no match was ever established: an error like any other command's
        if result.result == "quit" and result.problem is None:
            return result.detail  # the player stopped waiting: no error
        return f"{ERROR_PREFIX}{result.detail}"
    after = f" after {result.frames} frames" if result.frames else ""
    what = "" if result.detail == "you quit" else f"{result.result}: "  # not "quit: you quit"
    return f"{what}{result.detail}{after}{where}"
