"""`pong replay play`: a pygame window to watch a replay, built so tests can drive it headless.

`Viewer` holds everything but the window: `handle_event(event)`, `update(dt_ms)`, `render(surface)`,
`seek(frame)`, `step(delta)`. `run_viewer` opens the window and pumps events through it.

Keys: space play/pause; Left/Right step one frame (Shift: one second); Up/Down (or +/-) speed
x1/4 .. x8; PageUp/PageDown ten seconds back/forward; Home/End start/end; 0-9 seek to 0 %..90 %;
Esc or Q quit. Click or drag on the timeline to seek.

pygame is imported only inside functions: importing this module never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lockstep.rules import TICKS_PER_SECOND
from replay.playback import DEFAULT_KEYFRAME_INTERVAL, Playback
from replay.reader import Replay
from replay.render import GAME_WINDOW_SIZE, NoDisplayError, draw_state, draw_text, open_window, window_gone

__all__ = ["NoDisplayError", "Viewer", "run_viewer"]

if TYPE_CHECKING:
    import pygame

WINDOW_SIZE = GAME_WINDOW_SIZE  # the game's: a replay looks as the match did
PANEL_H = 64  # the strip under the court: two text lines and the timeline
SPEEDS = ((1, 4), (1, 2), (1, 1), (2, 1), (4, 1), (8, 1))  # (numerator, denominator) of real time
NORMAL_SPEED = 2
BUILD_BUDGET = 12_000  # keyframe frames built per update while idle (about 15 ms)

PANEL_BG = (16, 16, 24)
TEXT = (220, 220, 220)
DIM_TEXT = (140, 140, 150)
BAD = (230, 60, 60)
TIMELINE_BG = (50, 50, 60)
TIMELINE_FILL = (90, 140, 220)
TIMELINE_BUILT = (70, 70, 85)
TIMELINE_CURSOR = (255, 255, 255)
CHAT = (255, 200, 80)
CHAT_SHOWN_FRAMES = 6 * TICKS_PER_SECOND  # a line of chat stays over the court this long
CHAT_LINES = 5


def format_time(frames: int) -> str:
    """Frames as [h:]mm:ss.cc of play time."""
    seconds, rest = divmod(frames, TICKS_PER_SECOND)
    hundredths = rest * 100 // TICKS_PER_SECOND
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}.{hundredths:02d}"
    return f"{minutes:02d}:{seconds:02d}.{hundredths:02d}"


class Viewer:
    def __init__(self, replay: Replay, keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL) -> None:
        self.replay = replay
        self.playback = Playback(replay, keyframe_interval)
        self.playing = False
        self.running = True
        self.speed_index = NORMAL_SPEED
        self._acc = 0  # elapsed play time not yet turned into frames, in ms * 60 * numerator
        self._dragging = False
        self._size = WINDOW_SIZE  # the size last rendered at, for mouse hit tests

    # --- the model -------------------------------------------------------------------------------

    @property
    def frame(self) -> int:
        return self.playback.frame

    @property
    def frames(self) -> int:
        return self.playback.frames

    @property
    def speed(self) -> tuple[int, int]:
        return SPEEDS[self.speed_index]

    @property
    def speed_label(self) -> str:
        num, den = self.speed
        return f"x{num}" if den == 1 else f"x{num}/{den}"

    def seek(self, frame: int) -> int:
        self._acc = 0
        return self.playback.seek(frame)

    def step(self, delta: int) -> int:
        """Single-step (pauses playback)."""
        self.playing = False
        return self.seek(self.frame + delta)

    def toggle_play(self) -> None:
        if not self.playing and self.frame >= self.frames:
            self.seek(0)  # play again from the start
        self.playing = not self.playing
        self._acc = 0

    def change_speed(self, delta: int) -> None:
        self.speed_index = max(0, min(len(SPEEDS) - 1, self.speed_index + delta))
        self._acc = 0

    def update(self, dt_ms: int) -> None:
        """Advance playback by `dt_ms` of wall time at the current speed; build keyframes meanwhile."""
        if self.playing:
            num, den = self.speed
            self._acc += max(0, min(dt_ms, 250)) * TICKS_PER_SECOND * num  # no leap after a stall
            frames, self._acc = divmod(self._acc, 1000 * den)
            if frames:
                self.playback.step(frames)
            if self.frame >= self.frames:
                self.playing = False
                self._acc = 0
        if not self.playback.complete:
            self.playback.build_keyframes(BUILD_BUDGET)

    # --- input -----------------------------------------------------------------------------------

    def timeline_rect(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Where the timeline sits on a surface of this size (left, top, width, height)."""
        margin = 12
        return margin, height - 22, max(1, width - 2 * margin), 12

    def frame_at(self, x: int) -> int:
        left, _, width, _ = self.timeline_rect(*self._size)
        return max(0, min(self.frames, (x - left) * self.frames // width))

    def _on_timeline(self, pos: tuple[int, int]) -> bool:
        left, top, width, height = self.timeline_rect(*self._size)
        x, y = pos
        return left - 4 <= x <= left + width + 4 and top - 6 <= y <= top + height + 6

    def handle_event(self, event: Any) -> None:
        import pygame

        if event.type == pygame.QUIT:
            self.running = False
        elif event.type == pygame.KEYDOWN:
            self._key(event.key, getattr(event, "mod", 0))
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1 and self._on_timeline(event.pos):
            self._dragging = True
            self.seek(self.frame_at(event.pos[0]))
        elif event.type == pygame.MOUSEMOTION and self._dragging:
            self.seek(self.frame_at(event.pos[0]))
        elif event.type == pygame.MOUSEBUTTONUP and event.button == 1:
            self._dragging = False

    def _key(self, key: int, mod: int) -> None:
        import pygame

        second = TICKS_PER_SECOND
        shift = bool(mod & pygame.KMOD_SHIFT)
        if key in (pygame.K_ESCAPE, pygame.K_q):
            self.running = False
        elif key == pygame.K_SPACE:
            self.toggle_play()
        elif key == pygame.K_RIGHT:
            self.step(second if shift else 1)
        elif key == pygame.K_LEFT:
            self.step(-second if shift else -1)
        elif key in (pygame.K_UP, pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS):
            self.change_speed(+1)
        elif key in (pygame.K_DOWN, pygame.K_MINUS, pygame.K_KP_MINUS):
            self.change_speed(-1)
        elif key == pygame.K_PAGEDOWN:
            self.seek(self.frame + 10 * second)
        elif key == pygame.K_PAGEUP:
            self.seek(self.frame - 10 * second)
        elif key == pygame.K_HOME:
            self.seek(0)
        elif key == pygame.K_END:
            self.seek(self.frames)
        elif pygame.K_0 <= key <= pygame.K_9:
            self.seek(self.frames * (key - pygame.K_0) // 10)

    def chat_at(self, frame: int) -> list[str]:
        """The lines of chat shown at `frame`: those that arrived in the last few seconds of play."""
        recent = [c for c in self.replay.chat if frame - CHAT_SHOWN_FRAMES < c.frame <= frame]
        return [f"{c.name}: {c.text}" for c in recent[-CHAT_LINES:]]

    # --- drawing ---------------------------------------------------------------------------------

    def render(self, surface: pygame.Surface) -> None:
        import pygame

        width, height = surface.get_width(), surface.get_height()
        self._size = (width, height)
        court_h = max(1, height - PANEL_H)
        court = surface.subsurface(pygame.Rect(0, 0, width, court_h))
        playback = self.playback
        state = playback.state
        draw_state(court, self.replay.rules, state, self.replay.names)
        for i, line in enumerate(reversed(self.chat_at(self.frame))):
            draw_text(court, line, width // 2, court_h // 2 - 40 - 26 * i, 22, CHAT, align="centre")

        panel = pygame.Rect(0, court_h, width, height - court_h)
        surface.fill(PANEL_BG, panel)
        status = "playing" if self.playing else "paused"
        if state.over:
            status += ", match over"
        line1 = (
            f"frame {self.frame} / {self.frames}   {format_time(self.frame)} / {format_time(self.frames)}"
            f"   score {state.score_l} : {state.score_r}   chain {playback.chain.hex()}"
            f"   {self.speed_label} {status}"
        )
        draw_text(surface, line1, 12, court_h + 4, 18, TEXT)
        if playback.first_bad_frame is not None:
            line2, colour = (
                f"CHECKPOINT MISMATCH at frame {playback.first_bad_frame}: this replay does not verify",
                BAD,
            )
        else:
            checked = "all checkpoints ok" if playback.complete else f"checked to frame {playback.built_to}"
            ending = self.replay.end_reason or "no footer (truncated)"
            line2, colour = (
                f"{checked}; ended: {ending}   space play  arrows step/speed  PgUp/PgDn 10 s"
                "  Home/End  0-9 seek  click timeline  Q quit",
                DIM_TEXT,
            )
        draw_text(surface, line2, 12, court_h + 22, 16, colour)

        left, top, bar_w, bar_h = self.timeline_rect(width, height)
        surface.fill(TIMELINE_BG, pygame.Rect(left, top, bar_w, bar_h))
        total = max(1, self.frames)
        built = bar_w * playback.built_to // total
        surface.fill(TIMELINE_BUILT, pygame.Rect(left, top + bar_h - 3, built, 3))
        done = bar_w * self.frame // total
        surface.fill(TIMELINE_FILL, pygame.Rect(left, top, done, bar_h - 3))
        if playback.first_bad_frame is not None:
            bad_x = left + bar_w * playback.first_bad_frame // total
            surface.fill(BAD, pygame.Rect(bad_x - 1, top - 3, 3, bar_h + 6))
        surface.fill(TIMELINE_CURSOR, pygame.Rect(left + done - 1, top - 3, 3, bar_h + 6))


def run_viewer(replay: Replay, max_ticks: int | None = None) -> None:
    """Open the window and play until the user quits (or `max_ticks` frames have been drawn).

    Raises `NoDisplayError` when there is no display to open a window on.
    """
    left, right = replay.names
    screen = open_window(WINDOW_SIZE, f"Lockstep Pong replay: {left} vs {right}", resizable=True)
    import pygame  # after open_window, which keeps pygame's banner off stdout

    try:
        clock = pygame.time.Clock()
        viewer = Viewer(replay)
        ticks = 0
        while viewer.running:
            dt_ms = clock.tick(TICKS_PER_SECOND)
            for event in pygame.event.get():
                viewer.handle_event(event)
            if window_gone():  # destroyed from outside: as good as the close button
                break
            viewer.update(dt_ms)
            viewer.render(screen)
            pygame.display.flip()
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
    finally:
        pygame.quit()
