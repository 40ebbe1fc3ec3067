"""`pong watch HOST:PORT`: follow a hosted match as a spectator, at any moment of it."""

from __future__ import annotations

import argparse
from types import FrameType
from typing import TYPE_CHECKING

from peer.protocol import DEFAULT_SILENCE_TIMEOUT_MS, Timeouts
from peer.spectate import WatchOptions, WatchResult, WatchSession, WatchView
from tools import exitcodes, stopping
from tools.args import address
from tools.exitcodes import CommandError
from tools.output import ERROR_PREFIX, report, say
from tools.play import _key, chat_file_lines, key_words, silence_seconds

if TYPE_CHECKING:
    from peer.watch_window import WatchWindow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "address", type=address, metavar="HOST:PORT", help="the host to watch (port 7777 when left out)"
    )
    parser.add_argument("--key", help="the host's shared secret (or set PONG_KEY); never sent")
    parser.add_argument("--headless", action="store_true", help="no window: check and record only")
    parser.add_argument(
        "--record", metavar="PATH", help="replay file (default: pong-DATE-TIME-spectator.replay here)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--name", default="", help="your name as the others see it in the chat")
    parser.add_argument(
        "--timeout",
        type=silence_seconds,
        default=DEFAULT_SILENCE_TIMEOUT_MS // 1000,
        metavar="SECONDS",
        help=f"give up on a silent host after this long (default {DEFAULT_SILENCE_TIMEOUT_MS // 1000})",
    )
    parser.add_argument(
        "--chat",
        metavar="FILE",
        help="send each line of FILE as chat, one a second (received lines are printed)",
    )


class HeadlessWatcher:
    """No window: chat heard is printed, a signal asks to stop."""

    def __init__(self) -> None:
        self.quit = False

    def show(self, view: WatchView) -> None:
        pass

    def heard(self, name: str, text: str) -> None:
        say(f"chat {name}: {text}")

    def typed(self) -> str | None:
        return None

    def quit_requested(self) -> bool:
        return self.quit

    def finished(self, result: WatchResult) -> None:
        pass


def run(args: argparse.Namespace) -> int:
    host, port_number = args.address
    options = WatchOptions(
        host,
        port_number,
        key=_key(args),
        name=args.name,
        record=args.record,
        timeouts=Timeouts(silence_ms=args.timeout * 1000),
        chat=chat_file_lines(args.chat),
    )
    frontend: HeadlessWatcher | WatchWindow
    if args.headless:
        frontend = HeadlessWatcher()
    else:
        from peer.watch_window import WatchWindow, WindowUnavailable

        try:
            frontend = WatchWindow()
        except WindowUnavailable as exc:
            raise CommandError(f"{exc}; use --headless to watch without a window") from None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        frontend.quit = True

    previous = stopping.install(on_signal)
    try:
        result = WatchSession(options, frontend, log=say).run()
        if result.result == "auth_failed" and not result.followed:
            result.detail = key_words(result.detail, options.key)  # as `pong join` says it
        code = exit_code(result)
        report(summary(result), result.as_json(), args.json, failed=code != exitcodes.OK)
        stopping.hold()
    finally:
        stopping.restore(previous)
    return code


def exit_code(result: WatchResult) -> int:
    """0 followed to the end (or left by choice), 1 a chain check failed, 2 bad usage, 3 the
    connection failed or was refused."""
    if result.problem == "usage":
        return exitcodes.USAGE
    if result.desync_frame is not None:
        return exitcodes.CHECK_FAILED
    if result.followed or (result.result == "quit" and result.problem is None):
        return exitcodes.OK
    return exitcodes.NETWORK


def summary(result: WatchResult) -> str:
    """One line for a person."""
    where = f"; replay {result.replay}" if result.replay else ""
    if result.report:
        where += f"; report {result.report}"
    if result.desync_frame is not None:
        return f"desync: {result.detail}{where}"
    if result.followed:
        left, right = result.names or ("left", "right")
        score = f" {result.score[0]}-{result.score[1]}" if result.score else ""
        chain = f"; final chain {result.final_chain.hex()}" if result.final_chain else ""
        how = "" if result.detail in ("", "match over") else f" ({result.detail})"
        return (
            f"watched {left} vs {right}: {result.result}{how}{score} after {result.frames} frames, "
            f"every chain check matched{chain}{where}"
        )
    if result.result == "quit" and result.problem is None:
        return f"stopped watching after {result.frames} frames{where}"
    if result.problem is not None or result.result == "auth_failed":  # said in the player's words
        return f"{ERROR_PREFIX}{result.detail}"
    return f"{ERROR_PREFIX}{result.result}: {result.detail}{where}"
