"""The spectator's window: the match with both names, "watching" and how far behind live it is,
chat over the field, and the end screen with the result as the players see it.

Enter opens a chat line, Enter sends it, Esc cancels it; otherwise Esc or closing the window stops
watching.
"""

from __future__ import annotations

import time

from lockstep.rules import TICKS_PER_SECOND
from peer.messages import chat_text
from peer.spectate import WatchResult, WatchView
from peer.window import ALERT, END_SCREEN_MS, INFO, GameScreen
from replay.render import (
    FOREGROUND,
    NoDisplayError,
    draw_state,
    draw_text,
    window_gone,
)

WindowUnavailable = NoDisplayError


def behind_text(frames: int) -> str:
    return f"watching · {frames * 1000 // TICKS_PER_SECOND} ms behind live"


def end_text(result: WatchResult) -> tuple[str, list[str]]:
    """The end screen: the match's result as the players saw it (the host's word), the score with
    both names, and whether every check held."""
    lines: list[str] = []
    names = result.names
    if result.score is not None and names is not None:
        lines.append(f"{names[0]}  {result.score[0]} - {result.score[1]}  {names[1]}")
    if result.desync_frame is not None:
        headline = f"Desync at frame {result.desync_frame}"
        lines.append("this copy of the match differs from the host's")
    elif result.followed:
        left, right = result.score or (0, 0)
        winner = names[0] if names and left > right else names[1] if names and right > left else None
        if result.result == "finished":
            headline = f"{winner} won" if winner else "A draw"
        else:
            headline = f"Match ended: {result.result.replace('_', ' ')}"
            lines.append(result.detail)
        lines.append("every chain check matched")
    else:
        headline = result.result.replace("_", " ").capitalize()
        lines.append(result.detail)
    if result.replay:
        lines.append(f"replay saved to {result.replay}")
    return headline, lines


class WatchWindow(GameScreen):
    def __init__(self, end_screen_ms: int = END_SCREEN_MS) -> None:
        super().__init__("Lockstep Pong: watching", end_screen_ms)
        self._sent: list[str] = []
        self._names: tuple[str, str] | None = None

    # -- Watcher --------------------------------------------------------------------------------
    def show(self, view: WatchView) -> None:
        self.handle_events()
        if self._redraw_due():
            self.render(view)
            self.pygame.display.flip()

    def typed(self) -> str | None:
        return self._sent.pop(0) if self._sent else None

    def finished(self, result: WatchResult) -> None:
        """No end screen when the spectator chose to stop watching."""
        self._close(None if result.result == "quit" and result.problem is None else end_text(result))

    # -- input and drawing ----------------------------------------------------------------------
    def handle_events(self) -> None:
        pygame = self.pygame
        if window_gone():
            self.quit = True
            return
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                self.quit = True
            elif event.type == pygame.KEYDOWN:
                self._key(event.key)
            elif event.type == pygame.TEXTINPUT and self.typing is not None:
                self.typing = chat_text(self.typing + event.text) if event.text.isprintable() else self.typing

    def _key(self, key: int) -> None:
        pygame = self.pygame
        if self.typing is None:
            if key in (pygame.K_RETURN, pygame.K_KP_ENTER):
                self.typing = ""
            elif key == pygame.K_ESCAPE:
                self.quit = True
            return
        if key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            if self.typing:
                self._sent.append(self.typing)
                self.heard("you", self.typing)
            self.typing = None
        elif key == pygame.K_ESCAPE:
            self.typing = None
        elif key == pygame.K_BACKSPACE:
            self.typing = self.typing[:-1]

    def render(self, view: WatchView) -> None:
        surface = self.screen
        if view.state is None or view.rules is None:
            surface.fill((16, 16, 16))
            self._centre_text("LOCKSTEP PONG", -120, 72, FOREGROUND)
            self._centre_text(view.message or "connecting…", 0, 40)
            self._centre_text("Esc to stop watching", 100, 24, INFO)
        else:
            if view.names != self._names:
                self._names = view.names
                if view.names:
                    self.pygame.display.set_caption(
                        f"Lockstep Pong: watching {view.names[0]} vs {view.names[1]}"
                    )
            draw_state(surface, view.rules, view.state, view.names)
            draw_text(surface, behind_text(view.behind_frames), 10, 8, 20, INFO)
        self._draw_chat()

    def _draw_chat(self) -> None:
        now = time.monotonic()
        self.chat = [(until, line) for until, line in self.chat if until > now]
        height = self.screen.get_height()
        lines = [line for _, line in self.chat]
        if self.typing is not None:
            lines.append(f"say: {self.typing}_")
        y = height - 26 * len(lines) - 10
        for line in lines:
            draw_text(self.screen, line, 10, y, 22, ALERT)
            y += 26
