"""The lockstep engine: when a frame may be simulated, and whether both peers still agree.

No I/O and no clock: the caller feeds it local inputs, the remote peer's inputs and chain checks,
and drains the events it produces (GGRS-style: nothing is ever called back). The engine drives
any `Simulation` it is given (Pong's `Game`, a test's tiny game) and knows nothing of its rules:
it only advances it with both players' inputs, reads its chain and keeps its snapshots, so a
caller cannot advance a frame without the chain being computed and checked.

Frame numbering: frame f is the step from state f to state f+1 and needs both players' inputs
for f. Inputs for frames below the delay D are neutral. The local input sampled while the local
simulation stands at frame s applies to frame s + D, and carries the low `CHAIN_BITS` bits of the
local chain at frame s - lag (the check lag: always 0 here, where every frame is final when it
runs), so every input doubles as a chain check of a frame it names. Frame s is simulated only
after that sample: each local sample lets the game advance one frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from lockstep.inputs import INPUT_MASK
from lockstep.rules import TICKS_PER_SECOND
from lockstep.simulation import Simulation

CHAIN_BITS = 16
CHAIN_BITS_MASK = (1 << CHAIN_BITS) - 1
MAX_CHECK_LAG = 30
NO_CHECK_LAG = 31  # the check lag of an input that carries no chain check
MAX_DELAY_FRAMES = 30
DEFAULT_CHAIN_EVERY = 60  # full 8-byte chain exchanged once per second of play

G = TypeVar("G", bound=Simulation)


def chain_bits(chain: bytes) -> int:
    """The bits of a chain an input carries: its first two bytes, little-endian."""
    return (chain[0] | chain[1] << 8) & CHAIN_BITS_MASK


def auto_delay(rtt_ms: int) -> int:
    """The smallest input delay that keeps a 60 Hz game stall-free at this RTT, plus one frame.

    An input sent at frame f must arrive before the other peer reaches frame f + D. The joiner
    starts one one-way trip after the host, so the host's wait for a joiner input is a full round
    trip; D frames must cover the RTT, rounded up, and one frame of margin absorbs jitter.
    """
    if rtt_ms < 0:
        raise ValueError("rtt_ms must be >= 0")
    frames = -(-rtt_ms * TICKS_PER_SECOND // 1000)
    return min(max(frames, 0) + 1, MAX_DELAY_FRAMES)


class RemoteAheadError(ValueError):
    """The peer sent inputs further ahead than an honest peer in lockstep ever can."""


@dataclass(frozen=True, slots=True)
class LocalInput:
    """What the caller must send for a sampled local input: the input of `frame`, and the chain
    bits of frame `frame - delay - check_lag`."""

    frame: int
    player_input: int
    chain_bits: int
    check_lag: int = 0


@dataclass(frozen=True, slots=True)
class FrameAdvanced:
    """Frame `frame - 1` was simulated with `frame_input`; the state is now at `frame`."""

    frame: int
    frame_input: int
    chain: bytes


@dataclass(frozen=True, slots=True)
class ChainToSend:
    """Send the full chain of `frame` to the peer (every `chain_every` frames)."""

    frame: int
    chain: bytes


@dataclass(frozen=True, slots=True)
class DesyncDetected:
    """The peer's chain at `frame` differs from ours: the games diverged at or before `frame`.

    `remote` is the peer's full chain when a full check caught it, otherwise its low
    `remote_bits` bits (little-endian in two bytes).
    """

    frame: int
    local: bytes
    remote: bytes
    remote_bits: int


Event = FrameAdvanced | ChainToSend | DesyncDetected


def check_chain(frame: int, local: bytes, bits: int | None, full: bytes | None) -> DesyncDetected | None:
    """The peer's check of `frame` (its full chain, or its low bits) against ours: a desync, or
    None when they agree. Both engines judge alike."""
    if full is not None and full != local:
        return DesyncDetected(frame, local, full, 64)
    if bits is not None and bits != chain_bits(local):
        return DesyncDetected(frame, local, bits.to_bytes(2, "little"), CHAIN_BITS)
    return None


class Engine(Generic[G]):
    def __init__(
        self,
        game: G,
        delay_frames: int,
        local_slot: int,
        *,
        chain_every: int = DEFAULT_CHAIN_EVERY,
        history_frames: int = 120,
    ) -> None:
        if not 0 <= delay_frames <= MAX_DELAY_FRAMES:
            raise ValueError(f"input delay must be 0..{MAX_DELAY_FRAMES} frames")
        if local_slot not in (0, 1):
            raise ValueError("local slot must be 0 (left) or 1 (right)")
        if chain_every < 1:
            raise ValueError("chain_every must be >= 1")
        self.game = game
        self.delay = delay_frames
        self.local_slot = local_slot
        self.chain_every = chain_every
        # An honest peer is at most D frames ahead of our inputs, and its inputs at most D more.
        self.max_ahead = 2 * delay_frames + 32
        self.desync: DesyncDetected | None = None
        # Input queues aligned with the current frame: index 0 is the input for `self.frame`.
        self._local: deque[int] = deque([0] * delay_frames)
        self._remote: deque[int] = deque([0] * delay_frames)
        # Recent history for chain checks and desync reports: chain and snapshot of each frame.
        # It reaches back further than any check an honest peer can name (delay + lag).
        keep = max(history_frames, self.max_ahead + 1)
        self._chains: deque[bytes] = deque([game.chain], maxlen=keep)
        self._snapshots: deque[object] = deque([game.save()], maxlen=keep)
        self._inputs: deque[int] = deque(maxlen=keep)  # frame inputs of frames in history
        self._pending_bits: dict[int, int] = {}
        self._pending_full: dict[int, bytes] = {}
        self._last_agreed = -1
        self._events: list[Event] = []

    @classmethod
    def taken_up(
        cls,
        game: G,
        delay_frames: int,
        local_slot: int,
        local_inputs: Sequence[int],
        remote_inputs: Sequence[int] = (),
        *,
        chain_every: int = DEFAULT_CHAIN_EVERY,
        history_frames: int = 120,
    ) -> Engine[G]:
        """An engine for a match taken up again at the game's frame by a new process (the one that
        played it crashed): `local_inputs` are ours from that frame on, as the peer sent them back;
        the peer's inputs come from that frame on, after `remote_inputs` (the neutral ones of frames
        before the delay, when the match is taken up that early). Checks naming earlier frames find
        no history here and are passed over, as ones older than the history always are."""
        engine = cls(game, delay_frames, local_slot, chain_every=chain_every, history_frames=history_frames)
        engine._local = deque(value & INPUT_MASK for value in local_inputs)
        engine._remote = deque(value & INPUT_MASK for value in remote_inputs)
        # The peer resends what it sampled before it had to wait for us: up to our inputs it held
        # (as many as it sent back) and its delay beyond them.
        engine.max_ahead += len(local_inputs)
        return engine

    def remote_inputs(self, start: int) -> bytes | None:
        """The peer's inputs we hold from frame `start` on (a byte a frame), to send back to a peer
        that lost them in a crash; None when `start` is older than our history."""
        end = self.remote_input_end()
        if start >= end:
            return b""
        first_kept = self.frame - len(self._inputs)
        if start < first_kept:
            return None
        shift = 2 - 2 * self.local_slot  # where the peer's bits sit in a frame input
        held = bytearray((self._inputs[f - first_kept] >> shift) & 3 for f in range(start, self.frame))
        held += bytes(self._remote)[max(0, start - self.frame) :]
        return bytes(held)

    # -- queries -------------------------------------------------------------------------------
    @property
    def frame(self) -> int:
        return self.game.frame

    @property
    def chain(self) -> bytes:
        """The chain of `frame` (every frame here is final: the game's own)."""
        return self.game.chain

    @property
    def finished(self) -> bool:
        return self.game.finished

    @property
    def last_agreed_frame(self) -> int:
        """The latest frame whose chain the peer confirmed (bits or full); -1 before any."""
        return self._last_agreed

    def needs_local_input(self) -> bool:
        # Still true after a desync: our inputs carry our chain, which lets the peer see it too.
        return not self.finished and len(self._local) <= self.delay

    def remote_input_end(self) -> int:
        """The first frame whose remote input has not arrived yet."""
        return self.frame + len(self._remote)

    def remote_inputs_held(self) -> int:
        """The first frame whose remote input we do not hold: what to tell a peer after a drop."""
        return self.remote_input_end()

    def waiting_for_remote(self) -> bool:
        """The next frame has its local input but not the peer's."""
        return (
            len(self._local) > self.delay and not self._remote and not self.finished and self.desync is None
        )

    def pending_checks(self) -> int:
        """Chain checks received for frames not simulated yet."""
        return len(self._pending_bits.keys() | self._pending_full.keys())

    def chain_at(self, frame: int) -> bytes | None:
        index = frame - (self.frame - len(self._chains) + 1)
        return self._chains[index] if 0 <= index < len(self._chains) else None

    def snapshot_at(self, frame: int) -> object | None:
        """The game's `save()` of `frame`, if still in history. The engine's own: restore from it,
        read it, never change it."""
        index = frame - (self.frame - len(self._snapshots) + 1)
        return self._snapshots[index] if 0 <= index < len(self._snapshots) else None

    def inputs_before(self, frame: int, count: int) -> list[tuple[int, int]]:
        """(frame, frame_input) of up to `count` frames before state `frame`, from history."""
        frame = min(frame, self.frame)  # a frame named by the peer may lie beyond ours
        first_kept = self.frame - len(self._inputs)
        return [(f, self._inputs[f - first_kept]) for f in range(max(frame - count, first_kept), frame)]

    # -- input ---------------------------------------------------------------------------------
    def add_local_input(self, player_input: int) -> LocalInput:
        """Queue the local input for the next frame that needs one; returns what to send."""
        if not self.needs_local_input():
            raise RuntimeError("no local input is needed now (check needs_local_input first)")
        frame = self.frame + len(self._local)
        player_input &= INPUT_MASK
        self._local.append(player_input)
        sampled_at = frame - self.delay
        chain = self.chain_at(sampled_at)
        if chain is None:  # only in a match taken up again mid-way: before its first frame here
            return LocalInput(frame, player_input, 0, NO_CHECK_LAG)
        return LocalInput(frame, player_input, chain_bits(chain), 0)

    def add_remote_input(self, player_input: int, remote_chain_bits: int, check_lag: int = 0) -> int:
        """Queue the peer's next input (frames are implicit: TCP keeps them in order); returns its
        frame. Its chain bits are checked against frame `frame - delay - check_lag`, unless the
        lag is `NO_CHECK_LAG`."""
        if not 0 <= check_lag <= NO_CHECK_LAG:
            raise ValueError(f"check lag must be 0..{MAX_CHECK_LAG} or {NO_CHECK_LAG} (no check)")
        frame = self.frame + len(self._remote)
        if frame > self.frame + self.max_ahead:
            raise RemoteAheadError(
                f"peer sent input for frame {frame} while we are at frame {self.frame} "
                f"(at most {self.max_ahead} frames ahead are allowed)"
            )
        self._remote.append(player_input & INPUT_MASK)
        if check_lag != NO_CHECK_LAG:
            self._check(frame - self.delay - check_lag, remote_chain_bits & CHAIN_BITS_MASK, None)
        return frame

    def add_remote_chain(self, frame: int, chain: bytes) -> None:
        if frame > self.frame + self.max_ahead:
            raise RemoteAheadError(f"peer sent a chain check for frame {frame} while we are at {self.frame}")
        self._check(frame, None, chain)

    # -- simulation ----------------------------------------------------------------------------
    def advance(self, max_frames: int = 1 << 30) -> list[Event]:
        """Simulate every frame whose inputs are known (at most `max_frames`); drain events."""
        local, remote = self._local, self._remote
        delay = self.delay
        shift = 2 * self.local_slot  # the local player's bits in the packed frame input
        done = 0
        # Frame f runs only once the local input for f + D is sampled: one sample, one step. So the
        # local side stays D frames ahead and the delay hides the latency, even right at the start.
        while (
            len(local) > delay and remote and done < max_frames and not self.finished and self.desync is None
        ):
            frame_input = (local.popleft() << shift) | (remote.popleft() << (2 - shift))
            self._step(frame_input)
            done += 1
        events, self._events = self._events, []
        return events

    def _step(self, frame_input: int) -> None:
        game = self.game
        chain = game.advance(frame_input)
        frame = game.frame
        self._chains.append(chain)
        self._snapshots.append(game.save())
        self._inputs.append(frame_input)
        self._events.append(FrameAdvanced(frame, frame_input, chain))
        if frame % self.chain_every == 0 or game.finished:
            self._events.append(ChainToSend(frame, chain))
        bits = self._pending_bits.pop(frame, None)
        full = self._pending_full.pop(frame, None)
        if bits is not None or full is not None:
            self._check(frame, bits, full)

    def _check(self, frame: int, bits: int | None, full: bytes | None) -> None:
        if frame < 0 or self.desync is not None:
            return
        local = self.chain_at(frame)
        if local is None:
            if frame > self.frame:  # not simulated yet: check when we get there
                if bits is not None:
                    self._pending_bits[frame] = bits
                if full is not None:
                    self._pending_full[frame] = full
            return  # older than our history: an honest peer never lags that far behind
        desync = check_chain(frame, local, bits, full)
        if desync is not None:
            self._desync(desync)
        elif frame > self._last_agreed:
            self._last_agreed = frame

    def _desync(self, event: DesyncDetected) -> None:
        self.desync = event
        self._events.append(event)
