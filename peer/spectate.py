"""`pong watch`: follow a match as a spectator, over TCP, headless or in a window.

The host sends the match and every confirmed frame from frame 0 (peer/watching.py). Each batch is
re-simulated at once with `Game.run` and its chain checkpoint compared: a mismatch is a `desync`,
reported as the players report one. The picture is a second game that plays the same inputs at
60 Hz `BUFFER_FRAMES` behind the newest frame, so network jitter does not stutter it; while more
than `JUMP_FRAMES` behind (the catch-up) it jumps forward at once. The replay is written from the
re-simulation: frame 0 to the end, with the players' header.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lockstep.chain import CHAIN_SIZE
from lockstep.game import Game
from lockstep.rules import SIM_VERSION, TICKS_PER_SECOND, Rules, RulesError, split_rules_id
from lockstep.state import State
from peer.fanout import ConsumerFailed
from peer.handshake import Ended, Established, JoinerConfig
from peer.messages import Frames, MatchInfo, chat_text, name_as_sent
from peer.protocol import Timeouts
from peer.recording import ReplayRecorder, default_replay_path
from peer.transport import Poller, TransportError, format_endpoint, start_connect
from peer.watching import ChatIn, FramesIn, MatchBegins, SpectatorConnection
from replay.writer import ReplayWriteError

BUFFER_FRAMES = 6  # the picture plays this far behind the newest frame (100 ms)
JUMP_FRAMES = 30  # further behind than this (catching up), the picture jumps to the buffer's edge
CHAT_SEND_EVERY_MS = 1000  # --chat FILE: one line a second
CONNECT_TIMEOUT_MS = 5000
LOOP_SLEEP_MS = 5
SHOW_EVERY_MS = 15


@dataclass(frozen=True)
class WatchOptions:
    host: str
    port: int
    key: bytes | None = None
    name: str = ""
    record: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    chat: tuple[str, ...] = ()  # lines to send, one a second


@dataclass
class WatchView:
    """What the spectator's front end shows."""

    phase: str  # "connecting", "waiting", "watching"
    message: str = ""
    state: State | None = None
    rules: Rules | None = None
    names: tuple[str, str] | None = None
    behind_frames: int = 0


@dataclass
class WatchResult:
    result: str
    detail: str
    problem: str | None = None  # "usage" (bad replay path) or "network" (cannot connect)
    followed: bool = False  # it saw the match to its end, every chain check matched
    frames: int = 0
    final_chain: bytes | None = None
    score: tuple[int, int] | None = None
    names: tuple[str, str] | None = None
    joined_at_frame: int | None = None
    catch_up_ms: int | None = None
    max_behind_frames: int = 0
    replay: str | None = None
    report: str | None = None
    bytes_received: int = 0
    desync_frame: int | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "result": self.result,
            "detail": self.detail,
            "frames": self.frames,
            "final_chain": self.final_chain.hex() if self.final_chain else None,
            "score": list(self.score) if self.score else None,
            "names": list(self.names) if self.names else None,
            "joined_at_frame": self.joined_at_frame,
            "catch_up_ms": self.catch_up_ms,
            "max_behind_frames": self.max_behind_frames,
            "replay": self.replay,
            "report": self.report,
            "bytes_received": self.bytes_received,
            "desync_frame": self.desync_frame,
        }


class Watcher(Protocol):
    """Where the match is shown and chat comes from."""

    def show(self, view: WatchView) -> None: ...

    def heard(self, name: str, text: str) -> None: ...

    def typed(self) -> str | None: ...

    def quit_requested(self) -> bool: ...

    def finished(self, result: WatchResult) -> None: ...


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


class _Match:
    """The match being followed: the checking game, the picture's game, every input so far."""

    def __init__(self, info: MatchInfo, rules: Rules) -> None:
        self.info = info
        self.rules = rules
        self.game = Game(rules, info.seed)
        self.picture = Game(rules, info.seed)
        self.inputs = bytearray()
        self.checked_to = 0  # the last checkpoint that matched

    def established(self) -> Established:
        """The match as a replay header wants it (names in slot order: left as slot 0)."""
        info = self.info
        left, right = info.names
        return Established(self.rules, info.seed, info.delay_frames, 0, left, right, 0, netcode=info.netcode)


class WatchSession:
    def __init__(
        self,
        options: WatchOptions,
        frontend: Watcher,
        log: Callable[[str], None],
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.options = options
        self.frontend = frontend
        self.log = log
        self.clock = clock
        self.recorder = ReplayRecorder(
            options.record or default_replay_path("spectator"), created=options.record is None
        )
        self.match: _Match | None = None
        self._admitted_ms: int | None = None
        self._live = False
        self._chat = list(options.chat)
        self._next_chat_ms = 0
        self._picture_ms = 0
        self._host_chain = bytes(CHAIN_SIZE)  # the checkpoint a desync missed
        self._write_error: str | None = None
        self._recorder_end = "quit"  # the replay's end reason: the host's, once it said
        self.catch_up_ms: int | None = None
        self.max_behind = 0
        self.result: WatchResult | None = None

    def run(self) -> WatchResult:
        try:
            self.recorder.check()
        except ReplayWriteError as exc:
            return self._finished(WatchResult("quit", str(exc), problem="usage"))
        poller = Poller()
        try:
            return self._finished(self._run(poller))
        finally:
            self.recorder.close()
            poller.close()

    # -- the loop -------------------------------------------------------------------------------
    def _run(self, poller: Poller) -> WatchResult:
        opts = self.options
        where = format_endpoint(opts.host, opts.port)
        try:
            stream = start_connect(opts.host, opts.port, CONNECT_TIMEOUT_MS)
        except TransportError as exc:
            return WatchResult("peer_timeout", str(exc), problem="network")
        poller.add(stream)
        config = JoinerConfig(opts.key, opts.name or "spectator")
        timeouts = opts.timeouts
        conn = SpectatorConnection(
            config, secrets.token_bytes(16), self.clock(), timeouts.handshake_ms, timeouts.silence_ms
        )
        stream.send(conn.data_to_send())
        last_show = -SHOW_EVERY_MS
        try:
            while True:
                now = self.clock()
                if self.frontend.quit_requested():
                    conn.leave("quit", "the spectator left")
                    stream.send(conn.data_to_send())
                    return self._end(WatchResult("quit", "you stopped watching"), conn)
                data = stream.pump(0)
                if data:
                    conn.receive_data(data, now)
                if stream.closed:
                    if not stream.established:
                        reason = stream.close_reason or f"cannot connect to {where}"
                        return WatchResult("peer_timeout", reason, problem="network")
                    conn.receive_data(b"", now)
                conn.tick(now)
                done = self._events(conn, now)
                if done is not None:
                    stream.send(conn.data_to_send())
                    return self._end(done, conn)
                self._send_chat(conn, now)
                self._advance_picture(now)
                out = conn.data_to_send()
                if out:
                    stream.send(out)
                    stream.flush()
                if now - last_show >= SHOW_EVERY_MS:
                    last_show = now
                    self.frontend.show(self._view(stream.connecting))
                poller.wait(LOOP_SLEEP_MS)
        finally:
            stream.close(linger_ms=200)

    def _events(self, conn: SpectatorConnection, now: int) -> WatchResult | None:
        while (event := conn.next_event()) is not None:
            if isinstance(event, MatchBegins):
                problem = self._begin(event.info, now)
                if problem is not None:
                    conn.leave("rules_mismatch", problem)
                    return WatchResult("rules_mismatch", problem)
            elif isinstance(event, FramesIn):
                mismatch = self._check(event.frames, now)
                if mismatch is not None:
                    conn.leave("desync", f"the host's chain differs at frame {mismatch}")
                    return self._desync(mismatch)
                if self._write_error is not None:
                    conn.leave("quit", "the spectator cannot record the match")
                    return WatchResult("quit", f"stopped watching: {self._write_error}", problem="usage")
            elif isinstance(event, ChatIn):
                self.recorder.chat(event.name, event.text)
                self.frontend.heard(event.name, event.text)
            else:
                return self._ended(event)
        return None

    def _begin(self, info: MatchInfo, now: int) -> str | None:
        try:
            sim, encoded = split_rules_id(info.rules_id)
            rules = Rules.decode(encoded)
        except RulesError as exc:
            return f"the host's rules are not valid here: {exc}"
        if sim != SIM_VERSION:
            return f"simulation versions differ: host {sim}, spectator {SIM_VERSION}"
        match = self.match = _Match(info, rules)
        self._admitted_ms = now
        self._picture_ms = now
        self._live = info.joined_at == 0
        if self._live:
            self.catch_up_ms = 0
        self.recorder.open(match.established(), int(time.time()))
        left, right = info.names
        at = f"at frame {info.joined_at}" if info.joined_at else "from its start"
        self.log(f"watching {left} vs {right} ({at})")
        return None

    def _check(self, frames: Frames, now: int) -> int | None:
        """Re-simulate a batch and meet its checkpoint; the checkpoint's frame when it is missed."""
        match = self.match
        assert match is not None
        chains = bytearray()
        chain = match.game.run(frames.inputs, chains)
        match.inputs += frames.inputs
        end = match.game.frame
        if chain != frames.chain:
            self._host_chain = frames.chain
            return end
        match.checked_to = end
        try:
            self._record(frames.inputs, chains)
        except ConsumerFailed as exc:
            self._write_error = self._write_error or str(exc)
        if not self._live and end >= match.info.joined_at:
            self._live = True
            self.catch_up_ms = now - (self._admitted_ms or now)
        return None

    def _record(self, inputs: bytes, chains: bytearray) -> None:
        from lockstep.engine import FrameAdvanced

        match = self.match
        assert match is not None
        base = match.game.frame - len(inputs)
        batch = [
            FrameAdvanced(base + i + 1, inputs[i], bytes(chains[CHAIN_SIZE * i : CHAIN_SIZE * (i + 1)]))
            for i in range(len(inputs))
        ]
        self.recorder.take(batch)

    def _advance_picture(self, now: int) -> None:
        match = self.match
        if match is None:
            return
        received = match.game.frame
        shown = match.picture.frame
        target = max(0, received - BUFFER_FRAMES)
        if target - shown > JUMP_FRAMES:
            step = target - shown  # catching up: straight to the buffer's edge
            self._picture_ms = now
        else:
            due = (now - self._picture_ms) * TICKS_PER_SECOND // 1000
            step = max(0, min(due, target - shown))
            if due > 0:
                self._picture_ms += due * 1000 // TICKS_PER_SECOND
        if step > 0:
            match.picture.run(match.inputs[shown : shown + step])
        if self._live:
            self.max_behind = max(self.max_behind, received - match.picture.frame)

    def _send_chat(self, conn: SpectatorConnection, now: int) -> None:
        said = [self.frontend.typed()]
        if self._chat and self.match is not None and now >= self._next_chat_ms:
            self._next_chat_ms = now + CHAT_SEND_EVERY_MS
            said.append(self._chat.pop(0))
        for text in said:
            line = chat_text(text or "")
            if line:
                conn.chat(line)
                self.recorder.chat(name_as_sent(self.options.name or "spectator"), line)

    def _view(self, connecting: bool) -> WatchView:
        match = self.match
        if match is None:
            message = "connecting…" if connecting else "waiting for the match to start"
            return WatchView("connecting" if connecting else "waiting", message)
        behind = match.game.frame - match.picture.frame
        return WatchView("watching", "watching", match.picture.state, match.rules, match.info.names, behind)

    # -- the end --------------------------------------------------------------------------------
    def _ended(self, ended: Ended) -> WatchResult:
        """The connection ended: the match's end as the host saw it, or this connection's own."""
        match = self.match
        about_us = ended.chain is None or ended.chain == bytes(CHAIN_SIZE) or not ended.by_remote
        if match is None or about_us:
            return WatchResult(ended.reason, ended.detail)
        game = match.game
        if ended.frame != game.frame:
            detail = f"the host says the match ended at frame {ended.frame}, but sent {game.frame} frames"
            return WatchResult("protocol_error", detail)
        if ended.chain != game.chain:
            return self._desync(game.frame)
        result = WatchResult(ended.reason, ended.detail, followed=True)
        self._recorder_end = ended.reason
        return result

    def _desync(self, frame: int) -> WatchResult:
        result = WatchResult("desync", f"the re-simulation differs from the host's chain at frame {frame}")
        result.desync_frame = frame
        self._recorder_end = "desync"
        return result

    def _end(self, result: WatchResult, conn: SpectatorConnection) -> WatchResult:
        result.bytes_received = conn.bytes_received
        match = self.match
        if match is None:
            return result
        result.frames = match.game.frame
        result.final_chain = match.game.chain
        result.score = match.game.state.score()
        result.names = match.info.names
        result.joined_at_frame = match.info.joined_at
        result.catch_up_ms = self.catch_up_ms
        result.max_behind_frames = self.max_behind
        if result.result == "desync" and result.desync_frame is not None:
            result.report = write_report(self.recorder.path, match, result.desync_frame, self._host_chain)
        if self.recorder.finish(self._recorder_end):
            result.replay = self.recorder.path
        return result

    def _finished(self, result: WatchResult) -> WatchResult:
        self.result = result
        self.frontend.finished(result)
        return result


def write_report(replay_path: str, match: _Match, frame: int, host_chain: bytes) -> str | None:
    """A desync report as the players write one (peer/report.py's format): the checkpoint that
    failed (`frame`), the last one that matched, and the frames before the failure re-simulated
    from the last checkpoint with their states. Best-effort, like theirs."""
    from peer.messages import PROTOCOL_VERSION
    from peer.report import INPUT_HISTORY_FRAMES, REPORT_FORMAT, REPORT_KIND, _candidates, _create
    from replay.format import FORMAT_VERSION

    try:
        info = match.info
        game = Game(match.rules, info.seed)
        agreed = match.checked_to
        first = max(agreed, frame - INPUT_HISTORY_FRAMES)
        game.run(match.inputs[:agreed])
        before = game.state.copy()
        game.run(match.inputs[agreed:first])
        recent: list[dict[str, Any]] = []
        for f in range(first, frame + 1):
            if f > first:
                game.run(match.inputs[f - 1 : f])
            recent.append(
                {
                    "frame": f,
                    "input": match.inputs[f - 1] if f > 0 else None,
                    "chain": game.chain.hex(),
                    "state": game.state.as_dict(),
                }
            )
        report = {
            "report_format": REPORT_FORMAT,
            "kind": REPORT_KIND,
            "frame": frame,
            "detected_by": "local",
            "local_chain": game.chain.hex(),
            "remote_chain": host_chain.hex(),
            "remote_frame": frame,
            "remote_chain_bits": 64,
            "last_agreed_frame": agreed,
            "state_last_agreed_frame": agreed,
            "state_last_agreed": before.as_dict(),
            "state_first_divergent": game.state.as_dict(),
            "frames_simulated": frame,
            "recent_frames": recent,
            "slot": None,
            "role": "spectator",
            "names": list(info.names),
            "seed": info.seed,
            "input_delay": info.delay_frames,
            "rules": {name: getattr(match.rules, name) for name in match.rules.__dataclass_fields__},
            "replay": os.path.basename(replay_path),
            "versions": {
                "sim": SIM_VERSION,
                "protocol": PROTOCOL_VERSION,
                "replay_format": FORMAT_VERSION,
                "python": platform.python_version(),
                "implementation": platform.python_implementation(),
            },
        }
        text = json.dumps(report, indent=2, sort_keys=True) + "\n"
        return _create(_candidates(replay_path, frame), text)
    except Exception:  # best-effort: a report must never take the spectator down
        return None
