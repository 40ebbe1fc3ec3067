"""One side of a match without I/O: the protocol connection and the lockstep engine glued together.

The TCP session and the in-memory pair both drive a `MatchPeer`: feed it the peer's bytes and the
time, let it sample local input and advance, then write out `data_to_send()`. It decides how the
match ends and why (docs/design.md, "How a match ends"), and never touches a socket or a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lockstep.engine import (
    NO_CHECK_LAG,
    ChainToSend,
    DesyncDetected,
    Engine,
    FrameAdvanced,
    LocalInput,
    RemoteAheadError,
)
from lockstep.rollback import DEFAULT_MAX_ROLLBACK, AnyEngine, RollbackEngine
from lockstep.state import State
from peer.errors import RemoteProtocolError
from peer.handshake import Seat
from peer.messages import HANDSHAKE_REASONS, MAX_ECHO_FRAMES, Netcode, Purpose
from peer.perturb import GameFactory, pong_game
from peer.protocol import Connection, Ended, Established, RemoteChain, RemoteChat, RemoteInput

InputSource = Callable[[State], int]

# After our goodbye, how long to wait for the peer's (to compare final chains).
LINGER_MS = 2000
# Our recent inputs, kept to resend after a drop: far more than an honest peer can lack (the frames
# in flight when the link broke, at most the engine's `max_ahead`).
RESEND_KEEP = 512


@dataclass(frozen=True)
class Outcome:
    """How a match ended, from this side."""

    result: str  # one of peer.messages.REASONS
    detail: str
    by_remote: bool  # the peer ended it: its goodbye or refusal, or it went away (not: we found it at fault)
    frames: int  # frames simulated on this side (each with both players' inputs)
    final_chain: bytes | None
    desync: DesyncDetected | None = None


class MatchPeer:
    def __init__(
        self,
        connection: Connection,
        *,
        game_factory: GameFactory | None = None,
        chain_every: int = 60,
        reconnect_ms: int = 0,
        max_rollback: int = DEFAULT_MAX_ROLLBACK,
    ) -> None:
        """`game_factory` makes the game once the handshake names it (Pong by default; the
        session's `--debug-desync-at` passes a perturbed one). `reconnect_ms`: how long a match
        whose connection broke without a goodbye waits, paused, for `reconnect` (0: it ends).
        `max_rollback`: how far a rollback match may run ahead of the peer's inputs."""
        self.connection = connection
        # The handshake's netcode picks the engine; the game is the factory's (Pong unless told otherwise).
        self.engine: AnyEngine | None = None
        self._max_rollback = max_rollback
        self.established: Established | None = None
        self.outcome: Outcome | None = None
        self._game_factory = game_factory or pong_game()
        self._chain_every = chain_every
        self._remote_end: Ended | None = None
        self._linger_until: int | None = None
        self._new_frames: list[FrameAdvanced] = []
        self._reconnect_ms = reconnect_ms
        self._sent: deque[LocalInput] = deque(maxlen=RESEND_KEEP)
        self.lost_since: int | None = None  # the connection broke at; paused until `reconnect`
        self.lost_detail = ""  # why the connection was lost
        self.last_try = ""  # how the last try to get it back ended, if one did
        self._last_rtt_ms: int | None = None  # the round trip of the last connection that played
        self.reconnects = 0
        self.paused_ms = 0
        # A waiting room's handshake that came to take a seat back: for the match, not for this peer.
        self.resume_request: Established | None = None
        # A seat taken back from a replay after a crash: the frames it recorded (`take_seat_from`).
        self._recorded: bytes | None = None
        self.rejoined_at_frame: int | None = None
        self._taken_up_at: int | None = None  # our next input's frame when the seat was taken back
        self.watch_request: Established | None = None  # a waiting room's spectator, likewise
        self.heard: list[RemoteChat] = []  # chat from the other side, for the session to take

    # -- the caller's loop ----------------------------------------------------------------------
    def receive_data(self, data: bytes, now_ms: int) -> None:
        self.connection.receive_data(data, now_ms)
        self._drain_protocol(now_ms)

    def data_to_send(self) -> bytes:
        return self.connection.data_to_send()

    def update(self, now_ms: int, local_input: InputSource | None, max_frames: int = 1 << 30) -> bool:
        """One tick: timers, one local input if one is due, then every frame that can run.

        Returns True when it advanced at least one frame. `local_input` is called with the current
        local state (bots read it; the keyboard ignores it).
        """
        if self.outcome is not None:
            return False
        self.connection.tick(now_ms)
        self._drain_protocol(now_ms)
        engine = self.engine
        if engine is None or self.outcome is not None:
            return False
        if self.lost_since is not None:
            if now_ms - self.lost_since > self._reconnect_ms:
                detail = f"{self.lost_detail}; not back within {self._reconnect_ms // 1000} s"
                if self.last_try:
                    detail += f" (last try: {self.last_try})"
                self._conclude("peer_timeout", detail, by_remote=True)
            return False  # paused: a lockstep match cannot move without both players
        if self._linger_until is not None and now_ms >= self._linger_until:
            # Our match is over and the peer never confirmed its end.
            self._finish_unconfirmed("match over (the peer did not confirm its final frame)")
            return False
        # Inputs are still sampled after the peer's goodbye: reaching its final frame may need them.
        if engine.needs_local_input() and local_input is not None:
            sent = engine.add_local_input(local_input(engine.game.state))
            self._sent.append(sent)
            self.connection.send_input(sent.player_input, sent.chain_bits, sent.check_lag)
        events = engine.advance(max_frames)
        advanced = False
        for event in events:
            if isinstance(event, FrameAdvanced):
                self._new_frames.append(event)
                advanced = True
            elif isinstance(event, ChainToSend):
                self.connection.send_chain(event.frame, event.chain)
            elif isinstance(event, DesyncDetected):
                self._on_desync(event, now_ms)
        self._check_end(now_ms)
        return advanced

    def take_frames(self) -> list[FrameAdvanced]:
        """Frames simulated since the last call, in order (for the recorder and the screen)."""
        frames, self._new_frames = self._new_frames, []
        return frames

    def quit(self, now_ms: int) -> None:
        """The local player leaves: goodbye `quit`, and the match ends here."""
        if self.outcome is not None:
            return
        if self.engine is not None and self.engine.finished:
            # Only the peer's confirmation was outstanding: the match itself is complete.
            self._finish_unconfirmed("match over (you left before the peer confirmed its end)")
            return
        frame, chain = self._position()
        self.connection.send_goodbye("quit", frame, chain, "the other player quit")
        self._conclude("quit", "you quit", by_remote=False)

    def fail(self, detail: str) -> None:
        """The caller found the peer misbehaving (e.g. it stopped reading): end as a protocol error."""
        if self.outcome is None:
            self.connection.fail_remote(detail)
            self._conclude("protocol_error", detail, by_remote=False)

    def seat(self) -> Seat | None:
        """The match as this side holds it, for a resume of it: None once there is none to resume."""
        if self.established is None or self.outcome is not None:
            return None
        engine = self.engine
        if engine is None:
            return recorded_seat(self.established, self._recorded) if self._recorded is not None else None
        peer_inputs = engine.remote_inputs if isinstance(engine, Engine) else _none_kept
        return Seat(self.established, engine.remote_inputs_held(), self.local_inputs_end, peer_inputs)

    @property
    def seat_frames(self) -> int:
        """Frames the replay of a seat being taken back holds (0 otherwise)."""
        return len(self._recorded) if self._recorded is not None else 0

    def take_seat_from(self, established: Established, frame_inputs: bytes) -> None:
        """This process takes back a seat in a match whose first `len(frame_inputs)` frames its
        crashed predecessor recorded (`established` as its replay's header says). The connection,
        a RESUME handshake, brings the rest: the peer's inputs, and ours that the crash lost."""
        self.established = established
        self._recorded = frame_inputs

    def _take_up(self, est: Established) -> None:
        """Re-simulate the recorded frames (handed on as frames, so the new replay holds the whole
        match) and go on from the last one with our inputs the peer sent back."""
        assert self._recorded is not None
        game = self._game_factory(est)
        for frame_input in self._recorded:
            chain = game.advance(frame_input)
            self._new_frames.append(FrameAdvanced(game.frame, frame_input, chain))
        start = max(len(self._recorded), est.delay_frames)
        # Ours from the last recorded frame on: neutral before the delay, then what the peer holds.
        neutral = bytes(start - len(self._recorded))  # frames before the delay: nobody's input
        self.established = est
        self.engine = Engine[Any].taken_up(
            game, est.delay_frames, est.local_slot, neutral + est.echo, neutral, chain_every=self._chain_every
        )
        self._taken_up_at = start + len(est.echo)
        self._sent.extend(LocalInput(start + i, value, 0, NO_CHECK_LAG) for i, value in enumerate(est.echo))
        self.rejoined_at_frame = len(self._recorded)
        self._recorded = None

    def reconnect(self, connection: Connection, now_ms: int) -> None:
        """Go on over a new connection: one still in its RESUME handshake (the joiner redialled), or
        one whose handshake is done (the host's waiting room ran it). The old one is dropped."""
        if self.outcome is not None:
            return
        self.connection = connection
        if self.lost_since is None and self._recorded is None:  # the peer noticed the drop first
            self.lost_since = now_ms
        if connection.established is not None:
            if self.engine is None and self._recorded is not None:
                self._take_up(connection.established)
            self._resume(connection.established, now_ms)
        self._drain_protocol(now_ms)

    @property
    def local_inputs_end(self) -> int:
        """The frame our next sampled input will be for."""
        if self._sent:
            return self._sent[-1].frame + 1
        if self._taken_up_at is not None:
            return self._taken_up_at
        return self.established.delay_frames if self.established is not None else 0

    @property
    def rtt_ms(self) -> int | None:
        """The smoothed round trip of the match's connection; after a drop, of the last one that
        played (a new one still in its handshake has measured nothing yet)."""
        if self.connection.playing is not None:
            self._last_rtt_ms = self.connection.rtt_ms
        return self._last_rtt_ms if self._last_rtt_ms is not None else self.connection.rtt_ms

    @property
    def lost(self) -> bool:
        """The connection broke and the match waits, paused, for it to come back."""
        return self.lost_since is not None and self.outcome is None

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def waiting_for_peer(self) -> bool:
        """The match is live and the next frame lacks only the peer's input (a stall)."""
        return self.outcome is None and self.engine is not None and self.engine.waiting_for_remote()

    # -- internals ------------------------------------------------------------------------------
    def _position(self) -> tuple[int, bytes]:
        if self.engine is None:
            return 0, bytes(8)
        return self.engine.frame, self.engine.chain  # confirmed, under rollback too

    def _drain_protocol(self, now_ms: int) -> None:
        conn = self.connection
        while self.outcome is None:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                self._conclude(exc.reason, str(exc), by_remote=False)
                return
            if event is None:
                return
            try:
                if isinstance(event, RemoteInput):
                    assert self.engine is not None
                    # The connection numbers the peer's inputs from the frame the welcome named, the
                    # engine from its delay. After a resume the peer may resend one we got over the
                    # old link just before it went: held already, skipped. A gap is a lie.
                    held = self.engine.remote_inputs_held()
                    if event.frame < held:
                        continue
                    if event.frame > held:
                        raise RemoteAheadError(f"the peer's input for frame {event.frame} skips frame {held}")
                    self.engine.add_remote_input(event.player_input, event.chain_bits, event.check_lag)
                elif isinstance(event, RemoteChain):
                    assert self.engine is not None
                    self.engine.add_remote_chain(event.frame, event.chain)
            except RemoteAheadError as exc:
                conn.fail_remote(str(exc))
                self._conclude("protocol_error", str(exc), by_remote=False)
                return
            if isinstance(event, Established) and event.purpose is Purpose.WATCH:
                # A waiting room's spectator: its stream goes to peer.watching, not to a match.
                self.watch_request = event
                return
            if isinstance(event, Established) and event.purpose is Purpose.RESUME:
                if self.engine is None and self._recorded is not None:
                    self._take_up(event)
                elif self.engine is None:
                    # A waiting room's handshake: the match's own peer takes it from here (`reconnect`),
                    # with every event after this one still queued.
                    self.resume_request = event
                    return
                self._resume(event, now_ms)
            elif isinstance(event, Established):
                self.established = event
                game = self._game_factory(event)
                if event.netcode is Netcode.ROLLBACK:
                    self.engine = RollbackEngine[Any](
                        game,
                        event.delay_frames,
                        event.local_slot,
                        max_rollback=self._max_rollback,
                        chain_every=self._chain_every,
                    )
                else:
                    self.engine = Engine[Any](
                        game, event.delay_frames, event.local_slot, chain_every=self._chain_every
                    )
            elif isinstance(event, RemoteChat):
                self.heard.append(event)
            elif isinstance(event, Ended):
                self._on_ended(event, now_ms)

    def _resume(self, est: Established, now_ms: int) -> None:
        """The match goes on over a new connection: resend what the peer lacks of our inputs."""
        assert self.engine is not None and self.established is not None
        if est.match_id != self.established.match_id:
            self._fail_now("a resume named another match")
            return
        sent = self._sent
        next_frame = self.local_inputs_end
        oldest = sent[0].frame if sent else next_frame
        if not oldest <= est.resend_from <= next_frame:
            self._fail_now(
                f"the peer asks for our inputs from frame {est.resend_from}; we sent up to "
                f"{next_frame - 1} and keep them from {oldest}"
            )
            return
        for item in sent:
            if item.frame >= est.resend_from:
                self.connection.send_input(item.player_input, item.chain_bits, item.check_lag)
        if self.lost_since is not None:  # (a seat taken back from a replay was never lost here)
            self.paused_ms += max(0, now_ms - self.lost_since)
            self.reconnects += 1
        self.lost_since = None
        self.lost_detail = self.last_try = ""

    def _fail_now(self, detail: str) -> None:
        self.connection.fail_remote(detail)
        self._conclude("protocol_error", detail, by_remote=False)

    def _dropped(self, ended: Ended) -> bool:
        """Whether this end of the connection is a drop the match survives, paused, for a while."""
        engine = self.engine
        if self._reconnect_ms <= 0 or engine is None or engine.finished or engine.desync is not None:
            return False
        if self.lost_since is not None:
            return True  # a try to get the connection back failed: the next may not
        # The link broke (end of stream, reset, silence), or the peer says it broke for it.
        return ended.reason == "peer_timeout" and self.connection.playing is not None

    def _on_ended(self, ended: Ended, now_ms: int) -> None:
        engine = self.engine
        if engine is None:
            self._conclude(ended.reason, ended.detail, ended.by_remote)
            return
        if self._dropped(ended):
            if self.lost_since is None:
                self.lost_since = now_ms
                self.lost_detail = ended.detail or ended.reason
            else:
                self.last_try = ended.detail or ended.reason
            return
        if ended.reason == "desync" and ended.by_remote:
            frame, chain = self._position()
            self.connection.send_goodbye("desync", frame, chain, "desync reported by the peer")
            desync = None
            if ended.frame is not None and ended.chain is not None:
                local = engine.chain_at(ended.frame)
                if local is None:
                    # A frame we never had (or no longer keep): compare where we are, with our real
                    # chain, rather than invent one for the frame it names.
                    desync = DesyncDetected(engine.frame, engine.chain, ended.chain, 64)
                else:
                    desync = DesyncDetected(ended.frame, local, ended.chain, 64)
            self._conclude(
                "desync", ended.detail or "desync reported by the peer", by_remote=True, desync=desync
            )
        elif ended.reason == "finished" and ended.by_remote and ended.frame is not None:
            # Its inputs up to its last frame came before its goodbye (TCP keeps order), so an
            # honest peer's final frame is always within reach; a frame beyond it is a lie. Once our
            # own match is over we simulate no further: then the two ends are compared.
            if not engine.finished and ended.frame > engine.remote_input_end():
                detail = (
                    f"the peer says its match ended at frame {ended.frame}, but sent inputs only up "
                    f"to frame {engine.remote_input_end()}"
                )
                frame, chain = self._position()
                self.connection.send_goodbye("protocol_error", frame, chain, detail)
                self._conclude("protocol_error", detail, by_remote=False)
                return
            self._remote_end = ended  # within reach (checked above): no deadline needed to get there
            self._check_end(now_ms)
        elif engine.finished:
            # Our match is complete; the peer left (or the link dropped) before confirming its end.
            self._finish_unconfirmed(f"match over ({ended.detail or ended.reason})")
        elif engine.desync is not None:
            # A check failed in the bytes just before the peer left or went silent: the games
            # diverged, which matters more than how the connection ended.
            self._on_desync(engine.desync, now_ms)
        else:
            detail = ended.detail or _REMOTE_DETAIL.get(ended.reason, ended.reason.replace("_", " "))
            if ended.by_remote and ended.reason in HANDSHAKE_REASONS and ended.reason != "protocol_error":
                # Our handshake completed, the peer's did not (on a crawling link its deadline can
                # pass before our welcome arrives): its reason is about its side, say so.
                detail = f"the other player gave up before its handshake completed ({detail})"
            self._conclude(ended.reason, detail, ended.by_remote)

    def _on_desync(self, event: DesyncDetected, now_ms: int) -> None:
        self.connection.send_goodbye("desync", event.frame, event.local, f"desync at frame {event.frame}")
        self._conclude("desync", f"the games diverged at frame {event.frame}", by_remote=False, desync=event)

    def _check_end(self, now_ms: int) -> None:
        engine = self.engine
        if engine is None or self.outcome is not None:
            return
        remote_end = self._remote_end
        if engine.finished:
            frame, chain = self._position()
            self.connection.send_goodbye("finished", frame, chain, "match over")
            if remote_end is not None:
                self._compare_ends(remote_end, now_ms)
            elif self._linger_until is None:
                self._linger_until = now_ms + LINGER_MS
        elif remote_end is not None and remote_end.frame is not None and engine.frame >= remote_end.frame:
            # The peer says the match ended at a frame where ours goes on: the games differ.
            self._compare_ends(remote_end, now_ms)

    def _compare_ends(self, remote_end: Ended, now_ms: int) -> None:
        engine = self.engine
        assert engine is not None
        local = engine.chain_at(remote_end.frame) if remote_end.frame is not None else None
        same_end = engine.finished and remote_end.frame == engine.frame
        if same_end and local == remote_end.chain and engine.desync is None:
            self._conclude("finished", "match over", by_remote=False)
            return
        frame = remote_end.frame or 0
        desync = engine.desync or DesyncDetected(frame, local or bytes(8), remote_end.chain or bytes(8), 64)
        # Tell the peer: it finished and is waiting for our word on its final frame.
        self._on_desync(desync, now_ms)

    def _finish_unconfirmed(self, detail: str) -> None:
        """Our match ended; the peer's confirmation is missing. Every check so far still counts."""
        engine = self.engine
        assert engine is not None
        # A chain check may have failed after our last frame: the peer's late inputs carry them.
        if engine.desync is not None:
            self._conclude(
                "desync", f"the games diverged at frame {engine.desync.frame}", False, engine.desync
            )
        else:
            self._conclude("finished", detail, by_remote=False)

    def _conclude(
        self, result: str, detail: str, by_remote: bool, desync: DesyncDetected | None = None
    ) -> None:
        if self.outcome is not None:
            return
        if self.engine is not None and desync is None and result == "desync":
            # Only a desync names a divergent frame: after bad bytes from the peer (a protocol
            # error), a failed chain check is their consequence, not news about the games.
            desync = self.engine.desync
        frame, chain = self._position()
        self.outcome = Outcome(result, detail, by_remote, frame, chain if self.engine else None, desync)


_REMOTE_DETAIL = {
    "quit": "the other player quit",
    "peer_timeout": "the other player timed out",
}


def _none_kept(start: int) -> bytes | None:
    return None  # the rollback engine keeps no inputs to send back: a crash there cannot be resumed


def recorded_seat(established: Established, frame_inputs: bytes) -> Seat:
    """The seat a crashed player's replay holds: both streams up to its last frame, nothing after
    (its own later inputs went with the crash; the peer sends them back)."""
    start = max(len(frame_inputs), established.delay_frames)
    shift = 2 - 2 * established.local_slot  # where the peer's bits sit in a frame input

    def peer_inputs(first: int) -> bytes | None:
        if start - first > MAX_ECHO_FRAMES:
            return None  # no honest peer lacks that many: it would have stopped long before
        return bytes((value >> shift) & 3 for value in frame_inputs[first:])

    return Seat(established, start, start, peer_inputs)
