"""The rollback engine: predict the peer's input, run ahead, re-simulate when the prediction was wrong.

Same interface and the same events as the lockstep `Engine`, so `MatchPeer` drives either. The
difference is when a frame runs: the lockstep engine waits for both inputs; this one runs frame f as
soon as the local input of f + D is sampled (one sample, one step, as in lockstep), using the peer's
last input as the prediction of its input for frames it has not sent yet, at most `max_rollback`
frames beyond the last frame whose inputs are all known. When a real input differs from the
prediction, the game is restored to the snapshot of that frame and re-simulated up to where it was.

Confirmed frames are those simulated with both real inputs. Everything the outside world checks or
keeps is confirmed only: `FrameAdvanced` and `ChainToSend` events, `frame`, `chain`, `chain_at`,
`snapshot_at`, `inputs_before`, and chain checks both ways (the check lag of a sent input names a
confirmed frame, the one after the last it checked; received checks of frames not yet confirmed wait
until they are). So replays,
reports and the peer see the very frames and chains the lockstep engine would have produced from
the same inputs. Only `game` runs ahead: it holds the predicted state a window draws.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Generic, TypeVar

from lockstep.engine import (
    CHAIN_BITS_MASK,
    DEFAULT_CHAIN_EVERY,
    MAX_CHECK_LAG,
    MAX_DELAY_FRAMES,
    NO_CHECK_LAG,
    ChainToSend,
    DesyncDetected,
    Engine,
    Event,
    FrameAdvanced,
    LocalInput,
    RemoteAheadError,
    chain_bits,
    check_chain,
)
from lockstep.inputs import INPUT_MASK
from lockstep.rules import TICKS_PER_SECOND
from lockstep.simulation import Simulation

DEFAULT_MAX_ROLLBACK = 8
MAX_ROLLBACK = MAX_CHECK_LAG  # so a sent input can always name a confirmed frame to check

G = TypeVar("G", bound=Simulation)


def rollback_auto_delay(rtt_ms: int) -> int:
    """The local input delay `--delay auto` picks under rollback: one frame, two beyond 100 ms RTT.

    Prediction hides the round trip; the delay only trims how often a prediction is wrong (each
    frame of delay is a frame the peer's input has to arrive before it is needed) without making
    the local paddle feel late.
    """
    if rtt_ms < 0:
        raise ValueError("rtt_ms must be >= 0")
    return 1 if rtt_ms * TICKS_PER_SECOND <= 6 * 1000 else 2


class RollbackEngine(Generic[G]):
    def __init__(
        self,
        game: G,
        delay_frames: int,
        local_slot: int,
        *,
        max_rollback: int = DEFAULT_MAX_ROLLBACK,
        chain_every: int = DEFAULT_CHAIN_EVERY,
        history_frames: int = 120,
    ) -> None:
        if not 0 <= delay_frames <= MAX_DELAY_FRAMES:
            raise ValueError(f"input delay must be 0..{MAX_DELAY_FRAMES} frames")
        if local_slot not in (0, 1):
            raise ValueError("local slot must be 0 (left) or 1 (right)")
        if not 0 <= max_rollback <= MAX_ROLLBACK:
            raise ValueError(f"max rollback must be 0..{MAX_ROLLBACK} frames")
        if chain_every < 1:
            raise ValueError("chain_every must be >= 1")
        self.game = game
        self.delay = delay_frames
        self.local_slot = local_slot
        self.max_rollback = max_rollback
        self.chain_every = chain_every
        # The peer's confirmed frame trails our local inputs by at most its own max rollback (which
        # we do not know: take the largest allowed), its inputs lead that by its delay and ours.
        self.max_ahead = 2 * delay_frames + 2 * MAX_ROLLBACK + 32
        self.desync: DesyncDetected | None = None
        # Statistics: rollbacks done, frames re-simulated in all, the deepest single rollback.
        self.rollbacks = 0
        self.resimulated_frames = 0
        self.deepest_rollback = 0
        # Inputs from the confirmed frame on: index 0 is the input of frame `self._confirmed`.
        self._local: deque[int] = deque([0] * delay_frames)
        self._remote: deque[int] = deque([0] * delay_frames)
        self._last_remote = 0  # the peer's last confirmed input (the prediction when none is queued)
        self._confirmed = 0  # every frame before this one ran with both real inputs
        self._checked = -1  # the frame our last sent input checked
        self._rollback_from: int | None = None  # the first frame whose prediction proved wrong
        # History of the game as simulated (confirmed, then predicted): chain and snapshot of each
        # state up to `game.frame`, and the frame input of each frame up to `game.frame - 1`. It
        # reaches further back than any rollback and any check an honest peer can name.
        keep = max(history_frames, self.max_ahead + 1)
        self._chains: deque[bytes] = deque([game.chain], maxlen=keep)
        self._snapshots: deque[object] = deque([game.save()], maxlen=keep)
        self._inputs: deque[int] = deque(maxlen=keep)
        self._pending_bits: dict[int, int] = {}
        self._pending_full: dict[int, bytes] = {}
        self._last_agreed = -1
        self._events: list[Event] = []

    # -- queries (confirmed frames only, but `game` and `predicted_frame`) -----------------------
    @property
    def frame(self) -> int:
        """The confirmed frame: every frame before it ran with both players' real inputs."""
        return self._confirmed

    @property
    def predicted_frame(self) -> int:
        """Where the game stands, predictions included."""
        return self.game.frame

    @property
    def chain(self) -> bytes:
        """The chain of the confirmed frame."""
        chain = self._chain_of(self._confirmed)
        assert chain is not None, "the confirmed frame is always in history"
        return chain

    @property
    def finished(self) -> bool:
        """The match is over on confirmed frames (a predicted end may still be rolled back)."""
        return self.game.finished and self._confirmed == self.game.frame

    @property
    def last_agreed_frame(self) -> int:
        return self._last_agreed

    def needs_local_input(self) -> bool:
        return not self.finished and self._local_end() <= self.game.frame + self.delay

    def remote_input_end(self) -> int:
        """The first frame whose remote input has not arrived yet."""
        return self._confirmed + len(self._remote)

    def remote_inputs_held(self) -> int:
        return self.remote_input_end()

    def waiting_for_remote(self) -> bool:
        """The next frame has its local input but may not run before more of the peer's inputs
        confirm earlier ones (it would run more than `max_rollback` frames ahead, or the predicted
        game is over and only the peer's inputs can say whether it really is)."""
        if self.finished or self.desync is not None or self._local_end() <= self.game.frame + self.delay:
            return False
        return self.game.finished or not self._may_predict(self.game.frame)

    def pending_checks(self) -> int:
        return len(self._pending_bits.keys() | self._pending_full.keys())

    def chain_at(self, frame: int) -> bytes | None:
        return self._chain_of(frame) if frame <= self._confirmed else None

    def snapshot_at(self, frame: int) -> object | None:
        if frame > self._confirmed:
            return None
        index = frame - (self.game.frame - len(self._snapshots) + 1)
        return self._snapshots[index] if 0 <= index < len(self._snapshots) else None

    def inputs_before(self, frame: int, count: int) -> list[tuple[int, int]]:
        frame = min(frame, self._confirmed)
        first_kept = self.game.frame - len(self._inputs)
        return [(f, self._inputs[f - first_kept]) for f in range(max(frame - count, first_kept), frame)]

    # -- input ---------------------------------------------------------------------------------
    def add_local_input(self, player_input: int) -> LocalInput:
        if not self.needs_local_input():
            raise RuntimeError("no local input is needed now (check needs_local_input first)")
        frame = self._local_end()
        player_input &= INPUT_MASK
        self._local.append(player_input)
        # The checked frame must be confirmed here, or the peer would compare a prediction. Each
        # input checks the frame after the last one checked, so that every confirmed frame is
        # checked once (confirmation comes in bursts) and a divergence is named at its frame; a
        # lag the wire cannot carry skips ahead.
        sampled = frame - self.delay
        checked = min(self._confirmed, self._checked + 1, sampled)
        if sampled - checked > MAX_CHECK_LAG:
            checked = sampled - MAX_CHECK_LAG
            if checked > self._confirmed:
                return LocalInput(frame, player_input, 0, NO_CHECK_LAG)
        self._checked = checked
        chain = self._chain_of(checked)
        assert chain is not None, "a frame within the check lag is always in history"
        return LocalInput(frame, player_input, chain_bits(chain), sampled - checked)

    def add_remote_input(self, player_input: int, remote_chain_bits: int, check_lag: int = 0) -> int:
        if not 0 <= check_lag <= NO_CHECK_LAG:
            raise ValueError(f"check lag must be 0..{MAX_CHECK_LAG} or {NO_CHECK_LAG} (no check)")
        frame = self.remote_input_end()
        if frame > self._confirmed + self.max_ahead:
            raise RemoteAheadError(
                f"peer sent input for frame {frame} while we are at frame {self._confirmed} "
                f"(at most {self.max_ahead} frames ahead are allowed)"
            )
        player_input &= INPUT_MASK
        self._remote.append(player_input)
        wrong = frame < self.game.frame and player_input != self._remote_used(frame)
        if wrong and (self._rollback_from is None or frame < self._rollback_from):
            self._rollback_from = frame
        if check_lag != NO_CHECK_LAG:
            self._check(frame - self.delay - check_lag, remote_chain_bits & CHAIN_BITS_MASK, None)
        return frame

    def add_remote_chain(self, frame: int, chain: bytes) -> None:
        if frame > self._confirmed + self.max_ahead:
            raise RemoteAheadError(
                f"peer sent a chain check for frame {frame} while we are at {self._confirmed}"
            )
        self._check(frame, None, chain)

    # -- simulation ----------------------------------------------------------------------------
    def advance(self, max_frames: int = 1 << 30) -> list[Event]:
        """Roll back if a prediction was wrong, then run every frame the local inputs allow (at most
        `max_frames` new ones), predicting the peer's; drain the events of newly confirmed frames."""
        if self.desync is None:
            self._roll_back()
            done = 0
            while (
                done < max_frames
                and self.desync is None
                and not self.game.finished
                and self._local_end() > self.game.frame + self.delay
                and self._may_predict(self.game.frame)
            ):
                self._step(self.game.frame)
                done += 1
            self._confirm()
        events, self._events = self._events, []
        return events

    def _local_end(self) -> int:
        return self._confirmed + len(self._local)

    def _may_predict(self, frame: int) -> bool:
        """Frame `frame` may run now: its remote input is known, or within the rollback limit."""
        return frame < self.remote_input_end() + self.max_rollback

    def _remote_used(self, frame: int) -> int:
        """The peer's input that simulated frame `frame` (from the packed frame input)."""
        frame_input = self._inputs[frame - (self.game.frame - len(self._inputs))]
        return (frame_input >> (2 - 2 * self.local_slot)) & INPUT_MASK

    def _step(self, frame: int) -> None:
        base = self._confirmed
        remote = self._remote
        offset = frame - base
        # A missing input is predicted: the peer's latest one.
        latest = remote[-1] if remote else self._last_remote
        remote_input = remote[offset] if offset < len(remote) else latest
        shift = 2 * self.local_slot
        frame_input = (self._local[offset] << shift) | (remote_input << (2 - shift))
        game = self.game
        self._chains.append(game.advance(frame_input))
        self._snapshots.append(game.save())
        self._inputs.append(frame_input)

    def _roll_back(self) -> None:
        start = self._rollback_from
        if start is None:
            return
        self._rollback_from = None
        game = self.game
        end = game.frame
        # Back to the state of frame `start` (the snapshot is the engine's: restore copies it)...
        drop = end - start
        for _ in range(drop):
            self._chains.pop()
            self._snapshots.pop()
            self._inputs.pop()
        game.restore(self._snapshots[-1])
        # ...and forward again with what is known now; a game that ends sooner stops there.
        while game.frame < end and not game.finished:
            self._step(game.frame)
        self.rollbacks += 1
        self.resimulated_frames += game.frame - start
        self.deepest_rollback = max(self.deepest_rollback, drop)

    def _confirm(self) -> None:
        """Publish the frames that now ran with both real inputs, and check them; a desync stops
        it there, as it stops the lockstep engine."""
        game = self.game
        confirmed = min(game.frame, self.remote_input_end())
        first_input = game.frame - len(self._inputs)
        first_chain = game.frame - len(self._chains) + 1
        while self._confirmed < confirmed and self.desync is None:
            frame = self._confirmed + 1
            chain = self._chains[frame - first_chain]
            self._confirmed = frame
            self._local.popleft()
            self._last_remote = self._remote.popleft()
            self._events.append(FrameAdvanced(frame, self._inputs[frame - 1 - first_input], chain))
            if frame % self.chain_every == 0 or (frame == game.frame and game.finished):
                self._events.append(ChainToSend(frame, chain))
            bits = self._pending_bits.pop(frame, None)
            full = self._pending_full.pop(frame, None)
            if bits is not None or full is not None:
                self._check(frame, bits, full)

    def _chain_of(self, frame: int) -> bytes | None:
        index = frame - (self.game.frame - len(self._chains) + 1)
        return self._chains[index] if 0 <= index < len(self._chains) else None

    def _check(self, frame: int, bits: int | None, full: bytes | None) -> None:
        if frame < 0 or self.desync is not None:
            return
        if frame > self._confirmed:  # not confirmed yet: check when it is
            if bits is not None:
                self._pending_bits[frame] = bits
            if full is not None:
                self._pending_full[frame] = full
            return
        local = self._chain_of(frame)
        if local is None:
            return  # older than our history: an honest peer never lags that far behind
        desync = check_chain(frame, local, bits, full)
        if desync is not None:
            self._desync(desync)
        elif frame > self._last_agreed:
            self._last_agreed = frame

    def _desync(self, event: DesyncDetected) -> None:
        self.desync = event
        self._events.append(event)


# What a match drives: either engine (they answer the same queries and produce the same events).
AnyEngine = Engine[Any] | RollbackEngine[Any]
