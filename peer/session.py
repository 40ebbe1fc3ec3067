"""A live match over TCP: the host or joiner loop, its replay, its report and its result.

One thread, non-blocking sockets pumped from the game loop. The `MatchPeer`
decides everything about the match; this module moves bytes, keeps time, records the replay and
talks to a `Frontend` (the headless bot driver or the game window).

Time: a fixed 60 Hz timestep (sample input once per tick, advance while the engine allows), or
`fast` (no pacing: advance as fast as inputs arrive). The host accepts exactly one player; while it
waits, several handshakes may run at once so that one idle or junk connection cannot block a real
player, and once a match runs every further connection is refused with `session_full`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lockstep.engine import DesyncDetected
from lockstep.rules import TICKS_PER_SECOND, Rules
from lockstep.state import State
from peer.match import LINGER_MS, MatchPeer, Outcome
from peer.perturb import pong_game
from peer.protocol import (
    Connection,
    Established,
    HostConfig,
    JoinerConfig,
    Role,
    Timeouts,
)
from peer.transport import Listener, Poller, Stream, TransportError, start_connect
from replay.writer import ReplayWriteError, ReplayWriter

TICK_MS = 1000 / TICKS_PER_SECOND
MAX_CATCH_UP_TICKS = 8  # after a stall, run at most this many ticks at once
SHOW_EVERY_MS = 15
ACCEPT_EVERY_MS = 20  # during a match, newcomers are turned away this often (a syscall per frame is waste)
MAX_HANDSHAKES = 32  # concurrent handshakes while the host waits for a real player
STALE_HANDSHAKE_MS = 1000  # silence that no real player mid-handshake keeps (far above a round trip)
HANG_UP_MS = 2000  # how long a refused connection may take to read its refusal and hang up
CONNECT_TIMEOUT_MS = 5000

MAX_PENDING_BYTES = 1 << 20  # unsent bytes toward a peer that does not read: it is not playing


@dataclass(frozen=True)
class SessionOptions:
    role: Role
    host: str = "127.0.0.1"  # joiner: where to connect; host: where to bind
    port: int = 7777
    delay_frames: int | None = None  # host only; None = auto from the measured RTT
    key: bytes | None = None
    seed: int | None = None  # host only; None = random
    rules: Rules = field(default_factory=Rules)  # host only; the joiner plays the host's rules
    record: str | None = None  # replay path; None = a timestamped file in the current directory
    fast: bool = False
    name: str = ""
    debug_desync_at: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass
class View:
    """What a front end may show; read-only for it."""

    phase: str  # "waiting", "connecting", "handshake", "playing", "ended"
    message: str = ""
    hint: str = ""
    state: State | None = None
    rules: Rules | None = None
    established: Established | None = None
    stalled_ms: int = 0
    stalls: int = 0
    rtt_ms: int | None = None
    bytes_per_s: int = 0
    last_agreed_chain: str = ""
    outcome: Outcome | None = None


class Frontend(Protocol):
    """Where input comes from and where the match is shown (headless bots or a window)."""

    def started(self, established: Established) -> None: ...

    def local_input(self, state: State) -> int: ...

    def show(self, view: View) -> None: ...

    def quit_requested(self) -> bool: ...

    def finished(self, result: SessionResult) -> None: ...


@dataclass
class SessionResult:
    result: str
    detail: str
    by_remote: bool
    # Set when the session could not run or record as asked, whatever the match did: "usage" (a
    # replay that cannot be written) or "network" (cannot listen or connect). The command line
    # turns this and `result` into the exit code.
    problem: str | None = None
    frames: int = 0
    final_chain: bytes | None = None
    score: tuple[int, int] | None = None
    stalls: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    rtt_ms: int | None = None
    input_delay: int | None = None
    replay: str | None = None
    report: str | None = None
    local_slot: int | None = None
    desync: DesyncDetected | None = None
    seconds: float = 0.0  # wall time from the start of play to its end
    cpu_seconds: float = 0.0  # this process's CPU time over the same span

    def as_json(self) -> dict[str, object]:
        return {
            "result": self.result,
            "detail": self.detail,
            "frames": self.frames,
            "final_chain": self.final_chain.hex() if self.final_chain else None,
            "score": list(self.score) if self.score else None,
            "stalls": self.stalls,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "rtt_ms": self.rtt_ms,
            "input_delay": self.input_delay,
            "replay": self.replay,
            "report": self.report,
            "slot": self.local_slot,
            "desync_frame": self.desync.frame if self.desync else None,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
        }


def default_replay_path(role: Role, now: float | None = None) -> str:
    """A new file `pong-DATE-TIME-ROLE[-N].replay` here, created empty so no other match takes it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    for n in range(1, 1000):
        path = f"pong-{stamp}-{role.value}{'' if n == 1 else f'-{n}'}.replay"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue  # another match started in the same second
        except OSError:
            return path  # unwritable here: check_record_path will say so in one line
        return path
    return path


def check_record_path(path: str) -> bool:
    """Fail before any network activity when the replay could not be written; True when it
    created the (empty) file."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ReplayWriteError(f"cannot record to {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise ReplayWriteError(f"cannot record to {path}: it is a directory")
    if os.path.exists(path) and not os.path.isfile(path):
        # Opening a FIFO for writing would block the game loop until someone reads it.
        raise ReplayWriteError(f"cannot record to {path}: it is not a regular file")
    if not os.access(directory, os.W_OK):
        raise ReplayWriteError(f"cannot record to {path}: directory {directory} is not writable")
    # The real test is opening it (a read-only mount, /proc, a file we may not write): now, before
    # anyone joins, not once a match has begun. A file it creates stays empty until the match
    # starts, and is removed when no match does (Session._remove_empty_replay).
    existed = os.path.lexists(path)  # a dangling symlink exists too: its target is what gets made
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | (0 if existed else os.O_EXCL), 0o644))
    except FileExistsError:
        return False  # created a moment ago by someone else: the writer will tell if it cannot write
    except OSError as exc:
        raise ReplayWriteError(f"cannot record to {path}: {exc.strerror or exc}") from None
    return not existed


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


class _Link:
    """One TCP connection and the match peer speaking over it."""

    def __init__(self, stream: Stream, peer: MatchPeer) -> None:
        self.stream = stream
        self.peer = peer

    def pump(self, now_ms: int) -> None:
        data = self.stream.pump(0)
        if data:
            self.peer.receive_data(data, now_ms)
        if self.stream.closed and not self.peer.finished:
            self.peer.receive_data(b"", now_ms)

    def flush(self) -> None:
        out = self.peer.data_to_send()
        if out:
            self.stream.send(out)
            self.stream.flush()


class Session:
    def __init__(
        self,
        options: SessionOptions,
        frontend: Frontend,
        log: Callable[[str], None],
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.options = options
        self.frontend = frontend
        self.log = log
        self.clock = clock
        self.record_path = options.record or default_replay_path(options.role)
        self._created_record_file = options.record is None  # the default name is reserved by creating it
        self._writer: ReplayWriter | None = None
        self._write_error: str | None = None
        self._stalls = 0
        self._stalled_since: int | None = None
        self._stalled_frame = -1
        self._play_started: tuple[float, float] | None = None  # (wall, cpu) when play began
        self._listener: Listener | None = None
        self._poller = Poller()
        self._closing: list[tuple[Stream, int]] = []  # refused connections waiting to hang up
        self._link: _Link | None = None  # the match's connection, once there is one

    # -- entry points ---------------------------------------------------------------------------
    def run(self) -> SessionResult:
        try:
            if check_record_path(self.record_path):
                self._created_record_file = True
        except ReplayWriteError as exc:
            return SessionResult("quit", str(exc), False, problem="usage")
        try:
            if self.options.role is Role.HOST:
                return self._run_host()
            return self._run_joiner()
        finally:
            if self._writer is not None and not self._writer.closed:
                # An unexpected error: keep every frame recorded so far (the file has no footer,
                # so readers report it as cut short).
                with contextlib.suppress(ReplayWriteError):
                    self._writer.close()
            self._remove_empty_replay()
            if self._link is not None:
                self._link.stream.close(linger_ms=0)
            if self._listener is not None:
                self._listener.close()
            for stream, _ in self._closing:
                stream.close(linger_ms=0)
            self._poller.close()

    def _remove_empty_replay(self) -> None:
        """No match, no file: a replay file we created but never wrote is removed (one that was
        there before is the user's, even when empty)."""
        if not self._created_record_file or (self._writer is not None and self._writer.bytes_written > 0):
            return
        with contextlib.suppress(OSError):
            if os.path.isfile(self.record_path) and os.path.getsize(self.record_path) == 0:
                os.remove(self.record_path)

    def _new_peer(self, role: Role) -> MatchPeer:
        opts = self.options
        nonce = secrets.token_bytes(16)
        if role is Role.HOST:
            seed = opts.seed if opts.seed is not None else secrets.randbits(64)
            config = HostConfig(opts.rules, seed, opts.delay_frames, opts.key, opts.name or "host")
            conn = Connection(role, self.clock(), nonce, host=config, timeouts=opts.timeouts)
        else:
            joiner = JoinerConfig(opts.key, opts.name or "joiner")
            conn = Connection(role, self.clock(), nonce, joiner=joiner, timeouts=opts.timeouts)
        return MatchPeer(conn, game_factory=pong_game(opts.debug_desync_at))

    # -- host -----------------------------------------------------------------------------------
    def _run_host(self) -> SessionResult:
        opts = self.options
        try:
            self._listener = Listener(opts.host, opts.port)
        except TransportError as exc:
            return SessionResult("quit", str(exc), False, problem="network")
        where = (
            f"[{opts.host}]:{self._listener.port}"
            if ":" in opts.host
            else f"{opts.host}:{self._listener.port}"
        )
        self.log(f"waiting for a player on {where}")
        self._poller.add(self._listener)
        # The address to give a friend: a wildcard bind is reachable by this machine's name.
        reachable = platform.node() if opts.host in ("0.0.0.0", "::", "") else opts.host
        waiting = View(
            "waiting",
            f"waiting for a player on port {self._listener.port}",
            f"the other player runs: pong join {reachable}:{self._listener.port}",
        )
        handshakes: list[_Link] = []
        while True:
            now = self.clock()
            if self.frontend.quit_requested():
                for link in handshakes:
                    link.stream.close(linger_ms=0)
                return SessionResult("quit", "stopped hosting before anyone joined", False)
            self._accept(handshakes, now)
            for link in list(handshakes):
                link.pump(now)
                link.peer.update(now, None)
                link.flush()
                if link.peer.engine is not None:
                    # A real player: the match is on; everyone else is turned away.
                    handshakes.remove(link)
                    for other in handshakes:
                        self._refuse(other.stream, "another player joined first")
                    return self._play(link)
                if link.peer.outcome is not None:
                    handshakes.remove(link)
                    outcome = link.peer.outcome
                    # The detail of a goodbye is the other side's own words; say whose they are.
                    said = f"it says: {outcome.detail}" if outcome.by_remote else outcome.detail
                    how = "left the handshake" if outcome.by_remote else "refused"
                    self.log(f"{how}: {link.stream.peer}: {outcome.result} ({said})")
                    self._hang_up(link.stream)
            self._service_closing(now)
            self.frontend.show(waiting)
            self._poller.wait(10)

    def _accept(self, handshakes: list[_Link], now: int) -> None:
        assert self._listener is not None
        while (stream := self._accept_one()) is not None:
            if len(handshakes) >= MAX_HANDSHAKES:
                # Make room by dropping the most silent connection that has said nothing at all, or
                # nothing for STALE_HANDSHAKE_MS: turning every newcomer away would let a few idle
                # or hello-and-stall connections keep a real player out for as long as someone
                # keeps them open, while a player mid-handshake answers within a round trip.
                stale = [
                    link
                    for link in handshakes
                    if link.peer.connection.bytes_received == 0
                    or now - link.peer.connection.last_heard_ms >= STALE_HANDSHAKE_MS
                ]
                if not stale:
                    self._refuse(stream, "too many players are connecting at once")
                    continue
                silent = min(stale, key=lambda link: link.peer.connection.last_heard_ms)
                handshakes.remove(silent)
                detail = "too many connections at once, and this one was the most silent"
                self.log(f"refused: {silent.stream.peer}: session_full ({detail})")
                self._refuse(silent.stream, detail)
            link = _Link(stream, self._new_peer(Role.HOST))
            handshakes.append(link)
            self._poller.add(stream)

    def _accept_one(self) -> Stream | None:
        assert self._listener is not None
        try:
            return self._listener.accept()
        except TransportError as exc:  # out of file descriptors: the match must go on regardless
            self.log(f"cannot accept a connection: {exc}")
            return None

    def _refuse(self, stream: Stream, detail: str) -> None:
        conn = Connection(Role.HOST, self.clock(), bytes(16), host=HostConfig(Rules(), 0))
        conn.refuse("session_full", detail)
        stream.send(conn.data_to_send())
        self._hang_up(stream)

    def _hang_up(self, stream: Stream) -> None:
        """Close once the other side has read our last words and hung up (or after a moment).

        Closing at once would make our kernel answer their next bytes (a hello in flight) with a
        reset, and a reset can destroy the refusal before they read it.
        """
        stream.flush()
        self._closing.append((stream, self.clock() + HANG_UP_MS))

    def _service_closing(self, now: int) -> None:
        for item in list(self._closing):
            stream, deadline = item
            stream.pump(0)  # whatever they still say is of no interest; EOF is
            if stream.closed or now >= deadline:
                stream.close(linger_ms=0)
                self._closing.remove(item)

    # -- joiner ---------------------------------------------------------------------------------
    def _run_joiner(self) -> SessionResult:
        opts = self.options
        try:
            stream = start_connect(opts.host, opts.port, CONNECT_TIMEOUT_MS)
        except TransportError as exc:
            # The peer cannot be reached: the closest reason of the protocol is a timeout.
            return SessionResult("peer_timeout", str(exc), False, problem="network")
        self._poller.add(stream)
        connecting = View("connecting", f"connecting to {opts.host}:{opts.port}")
        while stream.connecting:
            if self.frontend.quit_requested():
                stream.close(linger_ms=0)
                return SessionResult("quit", "gave up connecting", False)
            self.frontend.show(connecting)
            self._poller.wait(10)
            stream.flush()  # completes the connection and sends the hello; reading is the match's job
        if stream.closed:
            reason = stream.close_reason or "cannot connect"
            return SessionResult("peer_timeout", reason, False, problem="network")
        return self._play(_Link(stream, self._new_peer(Role.JOINER)))

    # -- the match ------------------------------------------------------------------------------
    def _play(self, link: _Link) -> SessionResult:
        self._link = link
        peer = link.peer
        fast = self.options.fast
        next_tick = float(self.clock())
        bytes_mark = (self.clock(), 0)
        bytes_per_s = 0
        last_show = last_accept = -SHOW_EVERY_MS
        link.flush()
        while peer.outcome is None:
            now = self.clock()
            if self._listener is not None and now - last_accept >= ACCEPT_EVERY_MS:
                last_accept = now
                while (extra := self._accept_one()) is not None:
                    self._refuse(extra, "a match is already in progress")
                self._service_closing(now)
            link.pump(now)
            if self.frontend.quit_requested() and peer.outcome is None:
                peer.quit(now)
                break
            if peer.engine is None:  # the joiner's handshake
                peer.update(now, None)
            elif self._writer is None and self._write_error is None:
                self._start(peer)
                next_tick = float(now)
            elif fast:
                if not peer.update(now, self.frontend.local_input):
                    self._count_stall(peer, now)
                else:
                    self._stalled_since = None
            else:
                ticks = 0
                while now >= next_tick and ticks < MAX_CATCH_UP_TICKS and peer.outcome is None:
                    if peer.update(now, self.frontend.local_input):
                        self._stalled_since = None
                    else:
                        self._count_stall(peer, now)
                    next_tick += TICK_MS
                    ticks += 1
                if now - next_tick > MAX_CATCH_UP_TICKS * TICK_MS:
                    next_tick = now  # a long stall: do not try to replay all of it at once
            self._record(peer)
            link.flush()
            if link.stream.pending_bytes > MAX_PENDING_BYTES and peer.outcome is None:
                peer.fail(f"the peer has not read the last {link.stream.pending_bytes} bytes we sent")
            if peer.outcome is not None:
                break
            if now - bytes_mark[0] >= 1000:
                total = link.stream.bytes_sent + link.stream.bytes_received
                bytes_per_s = (total - bytes_mark[1]) * 1000 // max(1, now - bytes_mark[0])
                bytes_mark = (now, total)
            if now - last_show >= SHOW_EVERY_MS:  # a front end needs no more than the screen's rate
                last_show = now
                self.frontend.show(self._view(peer, now, bytes_per_s))
            self._wait(peer, fast, next_tick, now)
        return self._conclude(link)

    def _start(self, peer: MatchPeer) -> None:
        est = peer.established
        assert est is not None
        names = (
            (est.local_name, est.remote_name) if est.local_slot == 0 else (est.remote_name, est.local_name)
        )
        try:
            self._writer = ReplayWriter(
                self.record_path, est.rules, est.seed, est.delay_frames, names, int(time.time())
            )
        except ReplayWriteError as exc:
            self._write_error = str(exc)
        self._play_started = (time.monotonic(), time.process_time())
        self.frontend.started(est)
        side = "left" if est.local_slot == 0 else "right"
        frames = "frame" if est.delay_frames == 1 else "frames"
        self.log(
            f"playing {est.remote_name} ({side} paddle is yours); input delay {est.delay_frames} {frames}, "
            f"RTT {est.rtt_ms} ms, seed {est.seed}"
        )

    def _record(self, peer: MatchPeer) -> None:
        frames = peer.take_frames()
        writer = self._writer
        if writer is not None and self._write_error is None:
            try:
                for frame in frames:
                    writer.add_frame(frame.frame_input, frame.chain)
            except ReplayWriteError as exc:
                self._write_error = str(exc)
        if self._write_error is not None and peer.outcome is None:
            # A match nobody can replay or verify is not worth playing on: leave, and say why.
            peer.quit(self.clock())

    def _count_stall(self, peer: MatchPeer, now: int) -> None:
        """A stall is a frame that had to wait for the peer's input (counted once per frame)."""
        if peer.waiting_for_peer and peer.engine is not None:
            if peer.engine.frame != self._stalled_frame:
                self._stalls += 1
                self._stalled_frame = peer.engine.frame
            if self._stalled_since is None:
                self._stalled_since = now

    def _wait(self, peer: MatchPeer, fast: bool, next_tick: float, now: int) -> None:
        if peer.engine is None:
            timeout = 10  # the handshake: nothing to do until the host answers
        elif fast:
            # Spin while frames can run; otherwise (stalled, or done and waiting for the peer's
            # goodbye) sleep until the peer's bytes arrive.
            timeout = 5 if peer.waiting_for_peer or peer.engine.finished else 0
        else:
            timeout = max(0, min(int(next_tick - now), 20))
        if timeout:
            self._poller.wait(timeout)

    def _view(self, peer: MatchPeer, now: int, bytes_per_s: int) -> View:
        engine = peer.engine
        agreed = ""
        if engine is not None and engine.last_agreed_frame >= 0:
            chain = engine.chain_at(engine.last_agreed_frame)
            agreed = f"{engine.last_agreed_frame}:{chain.hex()}" if chain else ""
        return View(
            phase="playing" if engine is not None else "handshake",
            state=engine.game.state if engine is not None else None,
            rules=engine.game.rules if engine is not None else None,
            established=peer.established,
            stalled_ms=now - self._stalled_since if self._stalled_since is not None else 0,
            stalls=self._stalls,
            rtt_ms=peer.connection.rtt_ms,
            bytes_per_s=bytes_per_s,
            last_agreed_chain=agreed,
        )

    def _conclude(self, link: _Link) -> SessionResult:
        peer = link.peer
        outcome = peer.outcome
        assert outcome is not None
        ended = (time.monotonic(), time.process_time())
        self._record(peer)
        link.flush()
        # Give our last words (goodbye, refusal) a moment to leave, then close.
        link.stream.close(linger_ms=min(LINGER_MS, 500))
        est = peer.established
        engine = peer.engine
        result = SessionResult(
            outcome.result,
            outcome.detail,
            outcome.by_remote,
            frames=outcome.frames,
            final_chain=outcome.final_chain,
            score=engine.game.state.score() if engine is not None else None,
            stalls=self._stalls,
            bytes_sent=link.stream.bytes_sent,
            bytes_received=link.stream.bytes_received,
            rtt_ms=peer.connection.rtt_ms,
            input_delay=est.delay_frames if est else None,
            local_slot=est.local_slot if est else None,
            desync=outcome.desync,
        )
        if self._play_started is not None:
            result.seconds = ended[0] - self._play_started[0]
            result.cpu_seconds = ended[1] - self._play_started[1]
        # Whether a failed write is why we left: decided before the last write and sync, whose own
        # failure must not be blamed for a quit the player chose.
        left_for_write = self._write_error is not None and outcome.result == "quit" and not outcome.by_remote
        if self._writer is not None:
            try:
                self._writer.finish(outcome.result)
                result.replay = self.record_path
            except ReplayWriteError as exc:
                self._write_error = self._write_error or str(exc)
        if self._write_error is not None:
            result.detail = (
                f"left the match: {self._write_error}"
                if left_for_write
                else f"{result.detail}; {self._write_error}"
            )
            result.problem = "usage"
        if outcome.result == "desync" and engine is not None and outcome.desync is not None:
            from peer.report import write_desync_report

            result.report = write_desync_report(self.record_path, peer, outcome.desync)
        self.frontend.finished(result)
        return result
