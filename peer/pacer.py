"""When a live match samples the local input and advances: the 60 Hz clock of a session.

Realtime play samples one local input per 60 Hz slot and runs every frame the moment its inputs
are there (the peer's input often arrives between two slots: waiting for our next slot to use it
would halve the frame rate at a small input delay). A slot that passes while the game waits for
the peer is owed, not lost: once the input comes, the owed samples follow at once, up to
`MAX_CATCH_UP_TICKS` of them (a longer stall resumes at the normal pace).

Time sync (GGPO's frame advantage): each side estimates how far its schedule runs ahead of the
peer's from the timings it sees. For every frame it knows when it sampled its own input and when the
peer's input for that frame arrived; the peer sampled that input about half a round trip before it
arrived. If ours came first, we run ahead, and the game waits for the peer on every frame while the
peer's own inputs reach it early. The side ahead then lengthens its next slots a little (at most
`MAX_WAIT_PER_FRAME_MS` per frame), until both sample each frame at about the same time; the side
behind does nothing. No message carries clocks: timings alone say it, symmetrically on both sides.

`--fast` has no clock: sample whenever the engine takes an input, advance as fast as inputs arrive.

A stall is a frame that was late for the 60 Hz schedule because the peer's input was missing when
its slot came (in `--fast`, any frame that had to wait for the peer's input); each counts once.
"""

from __future__ import annotations

from lockstep.rules import TICKS_PER_SECOND
from lockstep.state import State
from peer.match import InputSource, MatchPeer

TICK_MS = 1000 / TICKS_PER_SECOND
MAX_CATCH_UP_TICKS = 8  # after a stall, run at most this many owed slots at once
MAX_WAIT_PER_FRAME_MS = TICK_MS / 8  # the side ahead slows by at most an eighth of a frame per frame
ADVANTAGE_DEAD_BAND_MS = 1.0  # timings are whole milliseconds: a smaller lead is noise
ADVANTAGE_SMOOTHING = 1 / 8  # weight of the newest frame in the estimate
WAIT_GAIN = 1 / 8  # the share of the estimated lead waited off per frame
MAX_SLEEP_MS = 20  # wake at least this often (the window's events, the protocol's timers)
MAX_UNPAIRED_FRAMES = 256  # far more than an honest peer is ever ahead or behind
HANDSHAKE_SLEEP_MS = 10
FAST_IDLE_SLEEP_MS = 5


class FrameAdvantage:
    """How many milliseconds our schedule runs ahead of the peer's, from when each frame's inputs
    were sampled here and arrived from the peer (no clock of its own: callers pass the times)."""

    def __init__(self) -> None:
        # Frame -> time, for frames whose other half is not known yet (the peer's input, or ours).
        self._sampled: dict[int, float] = {}
        self._arrived: dict[int, float] = {}
        self.estimate: float | None = None  # smoothed lead in ms; None before the first frame

    def local_sampled(self, frame: int, now_ms: float, rtt_ms: int | None) -> None:
        arrived = self._arrived.pop(frame, None)
        if arrived is None:
            _remember(self._sampled, frame, now_ms)
        else:
            self._observe(arrived, now_ms, rtt_ms)

    def remote_arrived(self, frames: range, now_ms: float, rtt_ms: int | None) -> None:
        for frame in frames:
            sampled = self._sampled.pop(frame, None)
            if sampled is None:
                _remember(self._arrived, frame, now_ms)
            else:
                self._observe(now_ms, sampled, rtt_ms)

    def _observe(self, arrived_ms: float, sampled_ms: float, rtt_ms: int | None) -> None:
        # The peer sampled its input for this frame about half a round trip before it arrived.
        lead = arrived_ms - (rtt_ms or 0) / 2 - sampled_ms
        if self.estimate is None:
            self.estimate = lead
        else:
            self.estimate += (lead - self.estimate) * ADVANTAGE_SMOOTHING

    def wait_ms(self) -> float:
        """How much later than one tick to sample the next frame: a share of our lead, if we lead."""
        lead = self.estimate
        if lead is None or lead <= ADVANTAGE_DEAD_BAND_MS:
            return 0.0
        wait = min((lead - ADVANTAGE_DEAD_BAND_MS) * WAIT_GAIN, MAX_WAIT_PER_FRAME_MS)
        # The wait takes effect on the very next frames; count it in now rather than wait for the
        # smoothed timings to show it, or the side ahead would keep waiting long after it caught up.
        self.estimate = lead - wait
        return wait


def _remember(times: dict[int, float], frame: int, now_ms: float) -> None:
    times[frame] = now_ms
    if len(times) > MAX_UNPAIRED_FRAMES:  # frames the other half never comes for (a resent stretch)
        del times[min(times)]


class Pacer:
    """Drives one `MatchPeer` once its match is established: realtime at 60 Hz, or `fast`."""

    def __init__(self, fast: bool) -> None:
        self.fast = fast
        self.advantage = FrameAdvantage()
        self.stalls = 0
        self.stalled_since: int | None = None  # when the current stall began (for the screen)
        self.waited_ms = 0.0  # total time added to slots to let the peer catch up
        self._stalled_frame = -1
        self._next_sample = 0.0
        self._remote_seen = 0  # the first frame whose peer input the time sync has not seen yet

    def start(self, peer: MatchPeer, now_ms: int) -> None:
        """The match is established: the first local input is due now."""
        assert peer.engine is not None and peer.established is not None
        self._next_sample = float(now_ms)
        # Inputs of the first `delay` frames are neutral on both sides: the first sampled input is
        # for frame `delay`, and so is the peer's first.
        self._remote_seen = peer.established.delay_frames
        self._note_arrivals(peer, now_ms)

    def resume(self, peer: MatchPeer, now_ms: int) -> None:
        """The match goes on after a drop: the next input is due now, and the time sync starts over
        (the inputs the peer resends arrive in a burst that says nothing of its clock)."""
        assert peer.engine is not None
        self._next_sample = float(now_ms)
        # Pair our next samples with the peer's inputs for the same frames: the ones it resends
        # were sampled before the drop and say nothing of its clock now.
        self._remote_seen = max(peer.engine.remote_input_end(), peer.local_inputs_end)
        self.advantage = FrameAdvantage()
        self.stalled_since = None

    def run(self, peer: MatchPeer, now_ms: int, local_input: InputSource) -> None:
        """Sample the local inputs that are due, run every frame whose inputs are there, count stalls."""
        engine = peer.engine
        assert engine is not None
        if self.fast:  # no clock, so nothing to keep together: no time sync either
            if peer.update(now_ms, local_input):
                self.stalled_since = None
            else:
                self._count_stall(peer, now_ms)
            return
        self._note_arrivals(peer, now_ms)

        def sample(state: State) -> int:
            self.advantage.local_sampled(peer.local_inputs_end, now_ms, peer.connection.rtt_ms)
            return local_input(state)

        if now_ms - self._next_sample > MAX_CATCH_UP_TICKS * TICK_MS:
            self._next_sample = float(now_ms)  # a long stall: resume at the normal pace
        sampled = False
        while self._due(now_ms) and engine.needs_local_input() and not peer.finished:
            peer.update(now_ms, sample)  # one sample, then every frame that can run
            wait = self.advantage.wait_ms()
            self.waited_ms += wait
            self._next_sample += TICK_MS + wait
            sampled = True
        if not sampled:
            peer.update(now_ms, None)  # the peer's inputs that arrived since: run their frames now
        if self._due(now_ms) and peer.waiting_for_peer:
            self._count_stall(peer, now_ms)  # a slot has come and the game still waits
        else:
            self.stalled_since = None

    def sleep_ms(self, peer: MatchPeer, now_ms: int) -> float:
        """How long the loop may sleep before this pacer has work (the peer's bytes wake it sooner)."""
        engine = peer.engine
        if engine is None:
            return HANDSHAKE_SLEEP_MS  # nothing to do until the host answers
        if self.fast:
            # Spin while frames can run; otherwise (stalled, or done and waiting for the peer's
            # goodbye) sleep until the peer's bytes arrive.
            return FAST_IDLE_SLEEP_MS if peer.waiting_for_peer or engine.finished else 0
        if engine.finished or not engine.needs_local_input():
            return MAX_SLEEP_MS  # only the peer's bytes (or a timer) can change anything now
        return max(0.0, min(self._next_sample - now_ms, MAX_SLEEP_MS))

    def _due(self, now_ms: int) -> bool:
        return now_ms >= self._next_sample

    def _note_arrivals(self, peer: MatchPeer, now_ms: int) -> None:
        engine = peer.engine
        if engine is None:
            return
        seen = engine.remote_input_end()
        if seen > self._remote_seen:
            self.advantage.remote_arrived(range(self._remote_seen, seen), now_ms, peer.connection.rtt_ms)
            self._remote_seen = seen

    def _count_stall(self, peer: MatchPeer, now_ms: int) -> None:
        engine = peer.engine
        if peer.waiting_for_peer and engine is not None:
            if engine.frame != self._stalled_frame:
                self.stalls += 1
                self._stalled_frame = engine.frame
            if self.stalled_since is None:
                self.stalled_since = now_ms
