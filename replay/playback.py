"""Random access into a replay: the game at any frame, fast, without pygame.

Keyframes (state + chain snapshots) are taken every `keyframe_interval` frames (3 s by default) by
a builder that runs ahead of playback, a slice at a time (`build_keyframes(budget)`), so a viewer
stays responsive while it works through a long replay. Seeking restores the keyframe at or below
the target and simulates at most `keyframe_interval - 1` frames; a seek beyond the keyframes built
so far first builds up to it (a whole hour takes about half a second, once).

The builder also compares the chain at every recorded checkpoint as it passes, so a viewer can show
whether the replay verifies without a separate pass.
"""

from __future__ import annotations

from lockstep.chain import chain_next
from lockstep.game import Game, Snapshot
from lockstep.rules import TICKS_PER_SECOND
from lockstep.sim import step
from lockstep.state import State
from replay.reader import Replay

DEFAULT_KEYFRAME_INTERVAL = 3 * TICKS_PER_SECOND


class Playback:
    def __init__(self, replay: Replay, keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL) -> None:
        if keyframe_interval < 1:
            raise ValueError("keyframe_interval must be at least 1")
        self.replay = replay
        self.rules = replay.rules
        self.frames = replay.frames
        self.keyframe_interval = keyframe_interval
        self._inputs = replay.frame_inputs
        self._game = Game(replay.rules, replay.seed)
        self._builder = Game(replay.rules, replay.seed)
        self._keyframes: list[Snapshot] = [self._builder.save()]
        self._checkpoints = list(replay.checkpoints)
        if replay.footer is not None:
            self._checkpoints.append((replay.footer.frames, replay.footer.final_chain))
        self._next_checkpoint = 0
        self.first_bad_frame: int | None = None  # first checkpoint whose chain did not match

    @property
    def frame(self) -> int:
        return self._game.frame

    @property
    def state(self) -> State:
        """The state at `frame`; read it, never write it."""
        return self._game.state

    @property
    def chain(self) -> bytes:
        return self._game.chain

    @property
    def built_to(self) -> int:
        """Frames the keyframe builder has simulated (and checked) so far."""
        return self._builder.frame

    @property
    def keyframes(self) -> int:
        return len(self._keyframes)

    @property
    def complete(self) -> bool:
        return self._builder.frame >= self.frames

    def build_keyframes(self, budget: int) -> bool:
        """Simulate up to `budget` more frames of the builder; True once the whole replay is done."""
        builder = self._builder
        state = builder.state
        chain = builder.chain
        rules = self.rules
        inputs = self._inputs
        interval = self.keyframe_interval
        checkpoints = self._checkpoints
        _step = step
        _next = chain_next
        frame = state.frame
        stop = min(self.frames, frame + max(0, budget))
        while frame < stop:
            # Run straight to the next keyframe, checkpoint or the end of the budget, whichever is first.
            target = min(stop, (frame // interval + 1) * interval)
            while self._next_checkpoint < len(checkpoints) and checkpoints[self._next_checkpoint][0] <= frame:
                self._next_checkpoint += 1
            if self._next_checkpoint < len(checkpoints):
                target = min(target, checkpoints[self._next_checkpoint][0])
            for frame_input in inputs[frame:target]:
                _step(state, rules, frame_input)
                chain = _next(chain, state)
            frame = target
            builder.chain = chain
            if frame % interval == 0:
                self._keyframes.append(builder.save())
            while self._next_checkpoint < len(checkpoints) and checkpoints[self._next_checkpoint][0] <= frame:
                at, expected = checkpoints[self._next_checkpoint]
                if at == frame and chain != expected and self.first_bad_frame is None:
                    self.first_bad_frame = frame
                self._next_checkpoint += 1
        return self.complete

    def seek(self, frame: int) -> int:
        """Go to `frame` (clamped to 0..frames); returns the frame reached."""
        frame = max(0, min(self.frames, frame))
        game = self._game
        if not game.frame <= frame < game.frame + self.keyframe_interval:
            index = frame // self.keyframe_interval
            if index >= len(self._keyframes):
                self.build_keyframes(index * self.keyframe_interval - self._builder.frame)
            game.restore(self._keyframes[index])
        inputs = self._inputs
        while game.frame < frame:
            game.advance(inputs[game.frame])
        return frame

    def step(self, delta: int) -> int:
        """Move `delta` frames forward (or back, when negative); returns the frame reached."""
        return self.seek(self.frame + delta)
