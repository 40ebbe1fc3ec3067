"""A live match over TCP: the host or joiner loop, its replay, its report and its result.

One thread, non-blocking sockets pumped from the game loop. The `MatchPeer` decides everything
about the match; the session wires the parts that move bytes and keep time around it, for the host
and for the joiner:

- the host's `WaitingRoom` (peer/waiting_room.py) listens, runs handshakes and hands the first
  player over; once a match runs it turns everyone else away with `session_full`;
- the `Pacer` (peer/pacer.py) owns the 60 Hz clock (or `fast`): when to sample the local input, how
  long the loop may sleep, stalls, and keeping the two peers' clocks together;
- the `Fanout` (peer/fanout.py) hands every confirmed frame to its consumers: the replay and the
  spectators;
- a `Frontend` (the headless bot driver or the game window) gives input and shows the match.

The session owns the result.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from lockstep.engine import DesyncDetected
from lockstep.game import Snapshot
from lockstep.rollback import DEFAULT_MAX_ROLLBACK, AnyEngine, RollbackEngine
from lockstep.rules import Rules
from lockstep.state import State
from peer.addresses import join_hint, waiting_line
from peer.fanout import Fanout
from peer.match import LINGER_MS, MatchPeer, Outcome, recorded_seat
from peer.messages import Netcode, Purpose, chat_text, name_as_sent
from peer.pacer import Pacer
from peer.perturb import pong_game
from peer.protocol import (
    Connection,
    Established,
    HostConfig,
    JoinerConfig,
    Role,
    Timeouts,
)
from peer.recording import ReplayRecorder, SeatError, check_record_path, default_replay_path, load_seat
from peer.spectators import Spectators
from peer.transport import Listener, Poller, Stream, TransportError, format_endpoint, start_connect
from peer.waiting_room import ACCEPT_EVERY_MS, Link, WaitingRoom
from replay.writer import ReplayWriteError

__all__ = [
    "Frontend",
    "Session",
    "SessionOptions",
    "SessionResult",
    "View",
    "check_record_path",
    "default_replay_path",
]

SHOW_EVERY_MS = 15
RECONNECTING_SLEEP_MS = 10
CONNECT_TIMEOUT_MS = 5000
WAITING_SLEEP_MS = 10
CHAT_EVERY_MS = 1000  # --chat FILE: a line a second

MAX_PENDING_BYTES = 1 << 20  # unsent bytes toward a peer that does not read: it is not playing
REDIAL_FIRST_MS = 100  # after a drop the joiner redials at once-ish, then backs off ...
REDIAL_MAX_MS = 1000  # ... to once a second


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
    netcode: Netcode = Netcode.LOCKSTEP  # host only; the joiner plays the host's
    max_rollback: int = DEFAULT_MAX_ROLLBACK  # rollback: how far the game may run ahead of the peer
    timeouts: Timeouts = field(default_factory=Timeouts)
    # How long a match whose connection broke without a goodbye waits, paused, to be taken up again
    # (the joiner redials, the host listens); 0: such a break ends the match.
    reconnect_s: int = 0
    # A replay of this side's, from a process that crashed mid-match: take its seat back.
    take_seat_from: str | None = None
    spectators: int = 0  # host only: how many may watch at once (`pong host` says 8)
    chat: tuple[str, ...] = ()  # lines to say, one a second once the match is on (`--chat FILE`)


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
    # Rollback only (None under lockstep): rollbacks over the last second, the deepest so far.
    rollbacks_per_s: float | None = None
    deepest_rollback: int = 0
    spectators: int = 0  # how many watch now


@runtime_checkable
class ChatFrontend(Protocol):
    """A front end where people chat: lines typed to send, lines heard to show."""

    def typed(self) -> str | None: ...

    def heard(self, name: str, text: str) -> None: ...


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
    netcode: str | None = None  # "lockstep" or "rollback", once the handshake said
    rollbacks: int = 0
    resimulated_frames: int = 0
    max_rollback: int | None = None  # the limit in force under rollback
    deepest_rollback: int = 0  # the most frames one rollback re-simulated
    reconnects: int = 0  # how many times play resumed after a drop
    paused_ms: int = 0  # total time paused for them
    rejoined_at_frame: int | None = None  # a seat taken back from a replay: its last recorded frame
    spectators: int = 0  # the host: how many watched

    def score_ours_first(self) -> tuple[int, int]:
        """(our points, theirs): the score is kept left paddle first."""
        left, right = self.score or (0, 0)
        return (left, right) if self.local_slot == 0 else (right, left)

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
            "netcode": self.netcode,
            "rollbacks": self.rollbacks,
            "resimulated_frames": self.resimulated_frames,
            "max_rollback": self.max_rollback,
            "deepest_rollback": self.deepest_rollback,
            "reconnects": self.reconnects,
            "paused_ms": self.paused_ms,
            "rejoined_at_frame": self.rejoined_at_frame,
            "spectators": self.spectators,
        }


def _confirmed_state(engine: AnyEngine) -> State:
    """The game's state at the confirmed frame (under rollback `game` may stand on predictions)."""
    snapshot = engine.snapshot_at(engine.frame)
    return snapshot.state if isinstance(snapshot, Snapshot) else engine.game.state


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


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
        # The default name is reserved by creating it, so that file is ours from the start.
        self.recorder = ReplayRecorder(
            options.record or default_replay_path(options.role),
            created=options.record is None,
            host=options.role is Role.HOST,
        )
        self.record_path = self.recorder.path
        self.pacer = Pacer(options.fast)
        # Asked once: a runtime Protocol check costs microseconds, and the loop runs per frame.
        self._chat_frontend = frontend if isinstance(frontend, ChatFrontend) else None
        self.fanout = Fanout()
        self._poller = Poller()
        silence_ms = options.timeouts.silence_ms
        self.spectators = Spectators(options.spectators, self._poller, log, clock, silence_ms)
        self._room: WaitingRoom | None = None
        self._seat_replay: tuple[Established, bytes] | None = None  # --rejoin/--resume: its match
        self._rejoining: MatchPeer | None = None  # ... and the peer that takes the seat back
        self._resumes_recorded = 0  # reconnects said in the replay so far
        self._paused_recorded = 0  # ... and the pauses they ended
        self._link: Link | None = None  # the match's connection, once there is one
        self._started = False
        self._play_started: tuple[float, float] | None = None  # (wall, cpu) when play began
        self._lost_logged = False  # the drop of the match's connection was said (and the pacer paused)
        self._redial_at: int | None = None  # the joiner's next try to get a dropped connection back
        self._redial_backoff_ms = REDIAL_FIRST_MS
        self._retired: set[Stream] = set()
        self._bytes_before = (0, 0)  # bytes of the match's earlier connections (sent, received)
        self._rollback_mark = (0, 0)  # (when, rollbacks then): the overlay's rate per second
        self._rollbacks_per_s = 0.0
        self._chat_out = list(options.chat)
        self._watchers_told: tuple[Connection, int] | None = None  # (connection, count) told the joiner
        self._next_chat_ms = 0

    # -- entry points ---------------------------------------------------------------------------
    def run(self) -> SessionResult:
        try:
            self.recorder.check()
        except ReplayWriteError as exc:
            return SessionResult("quit", str(exc), False, problem="usage")
        if self.options.take_seat_from is not None:
            try:
                self._seat_replay = load_seat(self.options.take_seat_from, self.options.role)
            except SeatError as exc:
                return SessionResult("quit", str(exc), False, problem="usage")
        try:
            if self.options.role is Role.HOST:
                return self._run_host()
            return self._run_joiner()
        finally:
            # An unexpected error keeps every frame recorded so far; no match, no file.
            self.recorder.close()
            self.spectators.close()
            if self._link is not None:
                self._link.stream.close(linger_ms=0)
            if self._room is not None:
                self._room.close()
            self._poller.close()

    def _new_peer(self, role: Role) -> MatchPeer:
        opts = self.options
        nonce = secrets.token_bytes(16)
        if role is Role.HOST:
            seed = opts.seed if opts.seed is not None else secrets.randbits(64)
            config = HostConfig(
                opts.rules, seed, opts.delay_frames, opts.key, opts.name or "host", netcode=opts.netcode
            )
            # A spectator is refused `spectators_full` when there is no room (none with --spectators 0).
            config = replace(
                config, purposes=config.purposes | {Purpose.WATCH}, spectators_full=self.spectators.full()
            )
            match = self._link.peer if self._link is not None else self._rejoining
            if match is not None:
                # The seat is taken: only its owner, coming back after a drop, may have it again.
                config = replace(
                    config,
                    purposes=config.purposes | {Purpose.RESUME},
                    seat=match.seat,
                    seat_taken="a match is already in progress",
                )
            conn = Connection(role, self.clock(), nonce, host=config, timeouts=opts.timeouts)
        else:
            joiner = JoinerConfig(opts.key, opts.name or "joiner")
            conn = Connection(role, self.clock(), nonce, joiner=joiner, timeouts=opts.timeouts)
        return MatchPeer(
            conn,
            game_factory=pong_game(opts.debug_desync_at),
            max_rollback=opts.max_rollback,
            reconnect_ms=opts.reconnect_s * 1000,
        )

    # -- host -----------------------------------------------------------------------------------
    def _run_host(self) -> SessionResult:
        opts = self.options
        try:
            listener = Listener(opts.host, opts.port)
        except TransportError as exc:
            return SessionResult("quit", str(exc), False, problem="network")
        room = self._room = WaitingRoom(
            listener, self._poller, lambda: self._new_peer(Role.HOST), self.log, self.clock
        )
        room.routes[Purpose.PLAY] = self._take_seat
        room.routes[Purpose.RESUME] = self._seat_taken_back
        if self._seat_replay is not None:
            # --resume: this process takes back the host's seat; only the joiner, redialling, plays.
            self._rejoining = self._rejoining_peer(Role.HOST)
            self.log(f"taking the host's seat back at frame {self._rejoining.seat_frames}")
        room.routes[Purpose.WATCH] = self.spectators.admit
        # A wildcard bind is no address to give the other player: name this machine's instead.
        self.log(waiting_line(opts.host, listener.port))
        waiting = View(
            "waiting", f"waiting for a player on port {listener.port}", join_hint(opts.host, listener.port)
        )
        while self._link is None:
            if self.frontend.quit_requested():
                return SessionResult("quit", "stopped hosting before anyone joined", False)
            room.admit(self.clock())
            for name, text in self.spectators.service(self.clock()):
                self._show_chat(name, text)
            if self._link is not None:
                break
            self.frontend.show(waiting)
            self._poller.wait(WAITING_SLEEP_MS)
        # A real player: the match is on; everyone else is turned away.
        room.refuse_handshakes("another player joined first")
        return self._play(self._link)

    def _take_seat(self, link: Link) -> str | None:
        """The play route of the waiting room: the first player to complete a handshake plays."""
        if self._link is not None:
            return "another player joined first"
        self._link = link
        return None

    def _seat_taken_back(self, link: Link) -> str | None:
        """The resume route: the joiner proved the match's secret; the match goes on over `link`."""
        old = self._link
        if old is None and self._rejoining is not None:  # --resume: the match is this process's again
            self._rejoining.reconnect(link.peer.connection, self.clock())
            self._link = Link(link.stream, self._rejoining)
            return None
        if old is None or old.peer.finished:
            return "the match is over"
        self._retire(old.stream)  # whatever it still carries is resent over the new one
        old.peer.reconnect(link.peer.connection, self.clock())
        self._link = Link(link.stream, old.peer)
        self._resumed(old.peer)
        return None

    def _resumed(self, peer: MatchPeer) -> None:
        if peer.lost or peer.finished:
            return
        self.pacer.resume(peer, self.clock())
        self._redial_at = None
        if peer.reconnects > self._resumes_recorded:
            self._resumes_recorded = peer.reconnects
            self.recorder.resumed("reconnect", peer.paused_ms - self._paused_recorded)
            self._paused_recorded = peer.paused_ms
        if self._lost_logged:
            self._lost_logged = False
            self.log(f"connection back (paused {peer.paused_ms / 1000:.1f} s in all); the match goes on")

    # -- joiner ---------------------------------------------------------------------------------
    def _run_joiner(self) -> SessionResult:
        opts = self.options
        try:
            stream = start_connect(opts.host, opts.port, CONNECT_TIMEOUT_MS)
        except TransportError as exc:
            # The peer cannot be reached: the closest reason of the protocol is a timeout.
            return SessionResult("peer_timeout", str(exc), False, problem="network")
        self._poller.add(stream)
        connecting = View("connecting", f"connecting to {format_endpoint(opts.host, opts.port)}")
        while stream.connecting:
            if self.frontend.quit_requested():
                stream.close(linger_ms=0)
                return SessionResult("quit", "gave up connecting", False)
            self.frontend.show(connecting)
            self._poller.wait(WAITING_SLEEP_MS)
            stream.flush()  # completes the connection and sends the hello; reading is the match's job
        if stream.closed:
            reason = stream.close_reason or "cannot connect"
            return SessionResult("peer_timeout", reason, False, problem="network")
        if self._seat_replay is not None:  # --rejoin: our crashed predecessor's seat
            peer = self._rejoining = self._rejoining_peer(Role.JOINER)
            self.log(f"taking our seat back at frame {peer.seat_frames}")
        else:
            peer = self._new_peer(Role.JOINER)
        self._link = Link(stream, peer)
        return self._play(self._link)

    def _rejoining_peer(self, role: Role) -> MatchPeer:
        """The match of the replay given to --rejoin/--resume, re-simulated once the peer answers."""
        assert self._seat_replay is not None
        opts = self.options
        est, frames = self._seat_replay
        now, nonce = self.clock(), secrets.token_bytes(16)
        if role is Role.JOINER:
            config = JoinerConfig(opts.key, opts.name or "joiner", Purpose.RESUME, recorded_seat(est, frames))
            connection = Connection(role, now, nonce, joiner=config, timeouts=opts.timeouts)
        else:  # a stand-in until the joiner's resume arrives through the waiting room
            stand_in = HostConfig(est.rules, est.seed, key=opts.key)
            connection = Connection(role, now, nonce, host=stand_in, timeouts=opts.timeouts)
        peer = MatchPeer(
            connection,
            game_factory=pong_game(opts.debug_desync_at),
            reconnect_ms=opts.reconnect_s * 1000,
        )
        peer.take_seat_from(est, frames)
        return peer

    # -- the match ------------------------------------------------------------------------------
    def _play(self, link: Link) -> SessionResult:
        peer = link.peer
        pacer = self.pacer
        bytes_mark = (self.clock(), 0)
        bytes_per_s = 0
        last_show = -SHOW_EVERY_MS
        link.flush()
        while peer.outcome is None:
            now = self.clock()
            if self._room is not None:
                if self.options.reconnect_s > 0 or self.options.spectators > 0:
                    # Players taking their seat back and spectators come in (newcomers now and then).
                    self._room.admit(now, ACCEPT_EVERY_MS)
                else:
                    self._room.turn_away(now, "a match is already in progress")
            link = self._link or link
            link.pump(now)
            from_spectators = self.spectators.service(now)
            if self.frontend.quit_requested() and peer.outcome is None:
                peer.quit(now)
                break
            if peer.engine is None:  # the joiner's handshake
                peer.update(now, None)
                if peer.engine is not None and peer.rejoined_at_frame is not None:
                    self._start(peer, now)  # before the re-simulated frames go out: the replay and
                    # the spectators get the whole match from frame 0
            elif peer.lost or self._lost_logged:
                link = self._reconnecting(link, now)
            else:
                if not self._started:
                    self._start(peer, now)
                pacer.run(peer, now, self.frontend.local_input)
            self._chat(peer, now, from_spectators)
            self._tell_watchers(peer)
            self._record(peer)
            if peer.rejoined_at_frame is not None and self._rejoining is not None:
                self._rejoining = None  # once: after the re-simulated frames, where play went on
                self.recorder.resumed("rejoin", 0, peer.rejoined_at_frame)
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
            timeout = RECONNECTING_SLEEP_MS if peer.lost else pacer.sleep_ms(peer, self.clock())
            if timeout > 0:
                self._poller.wait(timeout)
        return self._conclude(link)

    def _reconnecting(self, link: Link, now: int) -> Link:
        """The match's connection broke: paused, the host listens and the joiner redials, until the
        peer takes the match up again or the window closes (MatchPeer decides)."""
        peer = link.peer
        if not self._lost_logged:
            self._lost_logged = True
            self.log(
                f"connection lost ({peer.lost_detail}); waiting up to {self.options.reconnect_s} s for it"
            )
            self._retire(link.stream)
            self._redial_at = now
            self._redial_backoff_ms = REDIAL_FIRST_MS
        peer.update(now, None)  # the window's deadline; a resume handshake under way moves on
        if not peer.lost:
            self._resumed(peer)
            return link
        if self.options.role is not Role.JOINER or peer.finished:
            return link
        if link.stream.closed or peer.connection.ended is not None:
            if link.stream.close_reason and peer.connection.bytes_received == 0:
                peer.last_try = link.stream.close_reason  # refused, unreachable: not a handshake
            if self._redial_at is None:  # this try failed: the next one after a while
                self._redial_at = now + self._redial_backoff_ms
                self._redial_backoff_ms = min(2 * self._redial_backoff_ms, REDIAL_MAX_MS)
            self._retire(link.stream)
        if self._redial_at is not None and now >= self._redial_at:
            self._redial_at = None
            link = self._redial(peer, now) or link
        return link

    def _retire(self, stream: Stream) -> None:
        """Close a connection the match no longer uses, keeping its byte counts for the result."""
        if stream not in self._retired:
            self._retired.add(stream)
            self._bytes_before = (
                self._bytes_before[0] + stream.bytes_sent,
                self._bytes_before[1] + stream.bytes_received,
            )
        stream.close(linger_ms=0)
        self._poller.remove(stream)

    def _redial(self, peer: MatchPeer, now: int) -> Link | None:
        """One try to get the match's connection back: dial the host again and take our seat back."""
        opts = self.options
        seat = peer.seat()
        if seat is None:
            return None
        try:
            stream = start_connect(opts.host, opts.port, CONNECT_TIMEOUT_MS)
        except TransportError as exc:
            peer.last_try = str(exc)
            self._redial_at = now + self._redial_backoff_ms
            return None
        self._poller.add(stream)
        config = JoinerConfig(opts.key, opts.name or "joiner", Purpose.RESUME, seat)
        connection = Connection(
            Role.JOINER, now, secrets.token_bytes(16), joiner=config, timeouts=opts.timeouts
        )
        peer.reconnect(connection, now)
        self._link = Link(stream, peer)
        return self._link

    def _start(self, peer: MatchPeer, now: int) -> None:
        est = peer.established
        assert est is not None
        self._started = True
        self.recorder.open(est, int(time.time()))
        self.fanout.add(self.recorder, essential=True)
        if self.options.role is Role.HOST:
            self.spectators.start(est)
            self.fanout.add(self.spectators)
        self._play_started = (time.monotonic(), time.process_time())
        self.pacer.start(peer, now)
        if peer.rejoined_at_frame is not None:
            self.pacer.resume(peer, now)  # mid-match: the peer's resent inputs say nothing of its clock
            self.log(f"seat taken back at frame {peer.rejoined_at_frame}; the match goes on")
        self.frontend.started(est)
        frames = "frame" if est.delay_frames == 1 else "frames"
        netcode = "" if est.netcode is Netcode.LOCKSTEP else f", {est.netcode.name.lower()}"
        self.log(
            f"vs {est.remote_name}: you are the {est.side} paddle; input delay {est.delay_frames} {frames}, "
            f"RTT {est.rtt_ms} ms, seed {est.seed}{netcode}"
        )

    def _chat(self, peer: MatchPeer, now: int, from_spectators: list[tuple[str, str]]) -> None:
        """Chat is no part of the game or the chain: our lines go to everyone in the match, the
        host relays every line to everyone but its sender, and each is shown here."""
        est = peer.established
        host = self.options.role is Role.HOST
        said: list[str] = []
        if self._chat_frontend is not None and (typed := self._chat_frontend.typed()):
            said.append(typed)
        if self._chat_out and est is not None and now >= self._next_chat_ms:
            self._next_chat_ms = now + CHAT_EVERY_MS
            said.append(self._chat_out.pop(0))
        me = est.local_name if est is not None else name_as_sent(self.options.name or "host")
        for text in filter(None, map(chat_text, said)):
            peer.connection.send_chat(me if host else "", text)
            if host:
                self.spectators.relay(me, text)
            self._show_chat(me, text, own=True)
        for name, text in from_spectators:  # the host's: the other player hears them too
            peer.connection.send_chat(name, text)
            self._show_chat(name, text)
        for line in peer.heard:
            if host:
                self.spectators.relay(line.name, line.text)
            self._show_chat(line.name, line.text)
        peer.heard.clear()

    def _tell_watchers(self, peer: MatchPeer) -> None:
        """The host tells the joiner how many watch when it changes (and over a new connection)."""
        told = (peer.connection, len(self.spectators))  # the object: a new connection is told anew
        if self.options.role is Role.HOST and told != self._watchers_told and peer.connection.playing:
            peer.connection.send_watchers(told[1])
            self._watchers_told = told

    def _show_chat(self, name: str, text: str, own: bool = False) -> None:
        self.recorder.chat(name, text)
        if not own:
            self.log(f"chat {name}: {text}")
        if self._chat_frontend is not None:
            self._chat_frontend.heard(name, text)

    def _record(self, peer: MatchPeer) -> None:
        self.fanout.publish(peer.take_frames())
        if self.fanout.failure is not None and peer.outcome is None:
            # A match nobody can replay or verify is not worth playing on: leave, and say why.
            peer.quit(self.clock())

    def _view(self, peer: MatchPeer, now: int, bytes_per_s: int) -> View:
        engine = peer.engine
        agreed = ""
        if engine is not None and engine.last_agreed_frame >= 0:
            chain = engine.chain_at(engine.last_agreed_frame)
            agreed = f"{engine.last_agreed_frame}:{chain.hex()}" if chain else ""
        stalled_since = self.pacer.stalled_since
        rollbacks_per_s: float | None = None
        if isinstance(engine, RollbackEngine):
            at, count = self._rollback_mark
            if now - at >= 1000:
                self._rollbacks_per_s = (engine.rollbacks - count) * 1000 / (now - at)
                self._rollback_mark = (now, engine.rollbacks)
            rollbacks_per_s = self._rollbacks_per_s
        phase, message = ("playing" if engine is not None else "handshake"), ""
        if peer.lost and peer.lost_since is not None:
            left = max(0, self.options.reconnect_s - (now - peer.lost_since) // 1000)
            phase, message = "reconnecting", f"connection lost — reconnecting, {left} s"
        return View(
            phase=phase,
            message=message,
            state=engine.game.state if engine is not None else None,
            rules=engine.game.rules if engine is not None else None,
            established=peer.established,
            stalled_ms=now - stalled_since if stalled_since is not None else 0,
            stalls=self.pacer.stalls,
            rtt_ms=peer.rtt_ms,
            bytes_per_s=bytes_per_s,
            last_agreed_chain=agreed,
            rollbacks_per_s=rollbacks_per_s,
            deepest_rollback=engine.deepest_rollback if isinstance(engine, RollbackEngine) else 0,
            spectators=len(self.spectators) if self.options.role is Role.HOST else peer.connection.watchers,
        )

    def _conclude(self, link: Link) -> SessionResult:
        peer = link.peer
        outcome = peer.outcome
        assert outcome is not None
        ended = (time.monotonic(), time.process_time())
        # Whether a failed write is why we left: decided before the last write and sync, whose own
        # failure must not be blamed for a quit the player chose.
        self._record(peer)
        left_for_write = (
            self.fanout.failure is not None and outcome.result == "quit" and not outcome.by_remote
        )
        link.flush()
        final_chain = outcome.final_chain or bytes(8)
        self.spectators.finish(outcome.result, outcome.frames, final_chain, outcome.detail)
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
            score=_confirmed_state(engine).score() if engine is not None else None,
            stalls=self.pacer.stalls,
            bytes_sent=self._bytes_before[0] + link.stream.bytes_sent,
            bytes_received=self._bytes_before[1] + link.stream.bytes_received,
            reconnects=peer.reconnects,
            paused_ms=peer.paused_ms,
            rejoined_at_frame=peer.rejoined_at_frame,
            spectators=self.spectators.total,
            rtt_ms=peer.rtt_ms,
            input_delay=est.delay_frames if est else None,
            netcode=est.netcode.name.lower() if est else None,
            local_slot=est.local_slot if est else None,
            desync=outcome.desync,
        )
        if isinstance(engine, RollbackEngine):
            result.rollbacks = engine.rollbacks
            result.resimulated_frames = engine.resimulated_frames
            result.max_rollback = engine.max_rollback
            result.deepest_rollback = engine.deepest_rollback
        if self._play_started is not None:
            result.seconds = ended[0] - self._play_started[0]
            result.cpu_seconds = ended[1] - self._play_started[1]
        if self.recorder.finish(outcome.result):
            result.replay = self.record_path
        write_error = self.fanout.failure or self.recorder.error
        if write_error is not None:
            result.detail = (
                f"left the match: {write_error}" if left_for_write else f"{result.detail}; {write_error}"
            )
            result.problem = "usage"
        if outcome.result == "desync" and engine is not None and outcome.desync is not None:
            from peer.report import write_desync_report

            result.report = write_desync_report(self.record_path, peer, outcome.desync)
        self.frontend.finished(result)
        return result
