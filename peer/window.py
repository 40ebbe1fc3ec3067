"""The game window: keyboard play, the court, and every state a player must understand.

The session calls `show(view)` every loop; this front end pumps pygame's events there (so the
window stays responsive while waiting or stalled) and redraws at most 60 times a second. It reads
the game state and never writes it. W/S or the arrow keys move the local paddle, F3 toggles the
network overlay, Esc or closing the window quits (the session then says goodbye `quit`), and
the quitter's window closes at once; the end screen is for a match that ended by itself or by the
other side.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from lockstep.bots import Bot, make_bot
from lockstep.inputs import DOWN, NEUTRAL, UP
from lockstep.rules import TICKS_PER_SECOND
from lockstep.state import State
from peer.messages import chat_text
from peer.protocol import Established
from peer.session import SessionResult, View
from replay.render import (
    FOREGROUND,
    GAME_WINDOW_SIZE,
    NoDisplayError,
    court_layout,
    draw_state,
    draw_text,
    hold_end_screen,
    open_window,
    paddle_rects,
    window_gone,
)

WINDOW_SIZE = GAME_WINDOW_SIZE
STALL_NOTICE_MS = 100  # show "waiting for peer" after a stall this long
END_SCREEN_MS = 4000
CHAT_SHOWN_MS = 6000  # a line of chat stays over the field this long
CHAT_LINES = 5
FRAME_MS = 1000 // TICKS_PER_SECOND
DIM = (0, 0, 0, 160)
INFO = (200, 200, 200)
ALERT = (255, 200, 80)


WindowUnavailable = NoDisplayError  # no window can be opened here; the message says why


def result_text(result: SessionResult, names: tuple[str, str] | None = None) -> tuple[str, list[str]]:
    """The headline of the end screen and the lines under it: the score with both names (left
    player first, as on the court), what happened when the headline does not say it all, and
    where the replay (and a desync's report) went. No line says what another already said."""
    lines: list[str] = []
    if result.score is not None:
        left, right = result.score
        lines.append(f"{names[0]}  {left} - {right}  {names[1]}" if names else f"{left} - {right}")
    redundant = {"", "match over", "you quit", "the other player quit"}
    if result.result == "finished" and result.score is not None:
        mine, theirs = result.score_ours_first()
        headline = "You won!" if mine > theirs else "You lost" if mine < theirs else "A draw"
    elif result.result == "desync" and result.desync is not None:
        headline = f"Desync at frame {result.desync.frame}"
        redundant.add(f"desync at frame {result.desync.frame}")
        lines.append("the two games diverged")
    elif result.result == "quit":
        headline = "The other player left" if result.by_remote else "You quit"
    elif result.result == "peer_timeout":
        headline = "Connection lost"
    else:
        headline = result.result.replace("_", " ").capitalize()
    if result.detail.strip().lower() not in redundant:
        lines.append(result.detail)
    if result.replay:
        lines.append(f"replay saved to {result.replay}")
    if result.report:
        lines.append(f"report in {result.report}")
    return headline, lines


def names_of(established: Established | None) -> tuple[str, str] | None:
    """Both players' names, left paddle first."""
    if established is None:
        return None
    return established.names


def in_sync_text(last_agreed_chain: str) -> str:
    """The overlay's line for the last frame both sides agreed on (the view gives "FRAME:CHAIN")."""
    frame, _, _ = last_agreed_chain.partition(":")
    return f"in sync at frame {frame}" if frame.isdigit() else "not in sync yet"


def overlay_lines(view: View) -> list[str]:
    """The F3 overlay: the network as the player needs it, and how many watch."""
    est = view.established
    delay = f"{est.delay_frames} {'frame' if est.delay_frames == 1 else 'frames'}" if est else "?"
    lines = [
        f"ping {view.rtt_ms if view.rtt_ms is not None else '?'} ms",
        f"input delay {delay}",
        f"frame {view.state.frame if view.state else 0}",
        f"stalls {view.stalls}",
        f"{view.bytes_per_s} bytes/s",
        in_sync_text(view.last_agreed_chain),
    ]
    if view.rollbacks_per_s is not None:
        lines.append(f"rollbacks {view.rollbacks_per_s:.1f}/s, deepest {view.deepest_rollback}")
    lines.append(f"{view.spectators} watching")
    return lines


class GameScreen:
    """What the player's window and the spectator's share: the window, its redraw pace, the chat
    heard, centred text and the end screen."""

    def __init__(self, title: str, end_screen_ms: int) -> None:
        self.screen = open_window(WINDOW_SIZE, title, resizable=True)
        import pygame

        self.pygame: Any = pygame
        self.quit = False
        self.end_screen_ms = end_screen_ms
        self.typing: str | None = None  # the chat line being typed (Enter opens it), else None
        self.chat: list[tuple[float, str]] = []  # (shown until, line)
        self._last_draw = 0.0

    def quit_requested(self) -> bool:
        return self.quit

    def heard(self, name: str, text: str) -> None:
        self.chat.append((time.monotonic() + CHAT_SHOWN_MS / 1000, f"{name}: {text}"))
        del self.chat[:-CHAT_LINES]

    def _redraw_due(self) -> bool:
        """At most one redraw a frame: the session shows every turn of its loop."""
        now = time.monotonic()
        if now - self._last_draw < FRAME_MS / 1000:
            return False
        self._last_draw = now
        return True

    def _close(self, end: tuple[str, list[str]] | None) -> None:
        """The end screen (`end`: headline and lines) until a key, a click, the close button or
        Ctrl-C, unless there is none to show or the window is gone already; then the window goes."""
        try:
            if end is not None and not window_gone():
                draw = functools.partial(self.render_end, *end)
                hold_end_screen(self.pygame, self.end_screen_ms, draw, lambda: self.quit)
        finally:
            self.pygame.quit()

    def render_end(self, headline: str, lines: list[str]) -> None:
        surface = self.screen
        shade = self.pygame.Surface(surface.get_size(), self.pygame.SRCALPHA)
        shade.fill(DIM)
        surface.blit(shade, (0, 0))
        top = -40 - 17 * len(lines)
        self._centre_text(headline, top, 64, FOREGROUND)
        for i, line in enumerate(lines):
            self._centre_text(line, top + 60 + 34 * i, 28, INFO)
        self._centre_text("press any key", top + 70 + 34 * len(lines), 22, INFO)

    def _centre_text(self, text: str, dy: int, size: int, colour: tuple[int, int, int] = FOREGROUND) -> None:
        """A line centred across the window, `dy` pixels below its middle."""
        width, height = self.screen.get_size()
        draw_text(self.screen, text, width // 2, height // 2 + dy, size, colour, align="centre")


class WindowFrontend(GameScreen):
    def __init__(self, bot_name: str | None = None, end_screen_ms: int = END_SCREEN_MS) -> None:
        super().__init__("Lockstep Pong", end_screen_ms)
        self.bot_name = bot_name
        self.bot: Bot | None = None
        self.established: Established | None = None
        self.overlay = False
        # Keys held down, from KEYDOWN/KEYUP events: also sees posted events, unlike key.get_pressed().
        self._held: set[int] = set()
        self._said: list[str] = []

    # -- Frontend -------------------------------------------------------------------------------
    def started(self, established: Established) -> None:
        self.established = established
        if self.bot_name:
            self.bot = make_bot(self.bot_name, established.rules, established.local_slot, established.seed)
        me = established.local_name
        self.pygame.display.set_caption(f"Lockstep Pong: {me} vs {established.remote_name}")

    def local_input(self, state: State) -> int:
        if self.bot is not None:
            return self.bot.decide(state)
        self.handle_events()  # the freshest key state, right when the input is sampled
        if self.typing is not None:
            return NEUTRAL  # the keys type the chat line
        held = self._held
        k = self.pygame
        up = k.K_w in held or k.K_UP in held
        down = k.K_s in held or k.K_DOWN in held
        return (UP if up else NEUTRAL) | (DOWN if down else NEUTRAL)

    def typed(self) -> str | None:
        return self._said.pop(0) if self._said else None

    def show(self, view: View) -> None:
        self.handle_events()
        if self._redraw_due():
            self.render(view)
            self.pygame.display.flip()

    def finished(self, result: SessionResult) -> None:
        """No end screen when the local player quit: they asked for the window to go."""
        quitter = result.result == "quit" and not result.by_remote
        self._close(None if quitter else result_text(result, names_of(self.established)))

    # -- drawing (public so tests can render without the loop) ----------------------------------
    def handle_events(self) -> None:
        pygame = self.pygame
        if window_gone():  # destroyed from outside: as good as the close button
            self.quit = True
            return
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                self.quit = True
            elif event.type == pygame.KEYDOWN and self.typing is not None:
                self._type(event.key)
            elif event.type == pygame.TEXTINPUT and self.typing is not None:
                self.typing = chat_text(self.typing + event.text)
            elif event.type == pygame.KEYDOWN and event.key in (pygame.K_RETURN, pygame.K_KP_ENTER):
                self.typing = ""  # Enter opens a chat line; the paddle stops meanwhile
                self._held.clear()
            elif event.type == pygame.KEYDOWN:
                self._held.add(event.key)
                if event.key == pygame.K_ESCAPE:
                    self.quit = True
                elif event.key == pygame.K_F3:
                    self.overlay = not self.overlay
            elif event.type == pygame.KEYUP:
                self._held.discard(event.key)
            elif event.type == pygame.WINDOWFOCUSLOST:
                self._held.clear()  # a key released in another window must not stay held here

    def _type(self, key: int) -> None:
        """A key while typing: Enter sends the line, Esc cancels it, Backspace takes a character back."""
        pygame = self.pygame
        if key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            if self.typing:
                self._said.append(self.typing)
            self.typing = None
        elif key == pygame.K_ESCAPE:
            self.typing = None
        elif key == pygame.K_BACKSPACE and self.typing:
            self.typing = self.typing[:-1]

    def _draw_chat(self) -> None:
        """The last lines of chat for a few seconds, and the line being typed, low over the field."""
        now = time.monotonic()
        self.chat = [(until, line) for until, line in self.chat if until > now]
        lines = [line for _, line in self.chat]
        if self.typing is not None:
            lines.append(f"say: {self.typing}_  (Enter sends, Esc cancels)")
        for i, line in enumerate(reversed(lines)):
            self._centre_text(line, self.screen.get_height() // 2 - 40 - 26 * i, 22, ALERT)

    def render(self, view: View) -> None:
        surface = self.screen
        if view.state is None or view.rules is None:
            surface.fill((16, 16, 16))
            self._centre_text("LOCKSTEP PONG", -120, 72, FOREGROUND)
            self._centre_text(view.message or "connecting…", 0, 40)
            if view.hint:
                self._centre_text(view.hint, 45, 28, INFO)
            quit_hint = "Esc to stop hosting" if view.phase == "waiting" else "Esc to give up"
            self._centre_text(quit_hint, 100, 24, INFO)
            return
        est = view.established
        draw_state(surface, view.rules, view.state, names_of(est))
        if est is not None:
            self._mark_own_paddle(view, est.local_slot)
        state = view.state
        if state.frame < view.rules.serve_delay_frames and est is not None:
            self._centre_text("Get ready!", -40, 56, ALERT)
            self._centre_text(f"you are the {est.side} paddle: W/S or arrow keys", 20, 26, INFO)
            # The countdown to the first serve, as a bar that empties.
            width, height = surface.get_size()
            full = width // 3
            left = max(0, view.rules.serve_delay_frames - state.frame)
            bar = full * left // max(1, view.rules.serve_delay_frames)
            surface.fill(ALERT, self.pygame.Rect((width - bar) // 2, height // 2 + 50, bar, 6))
        if view.phase == "reconnecting":
            self._centre_text(view.message, 0, 40, ALERT)
        elif view.stalled_ms >= STALL_NOTICE_MS:
            self._centre_text("waiting for peer…", 0, 40, ALERT)
        if self.overlay:
            self._draw_overlay(view)
        self._draw_chat()

    def _mark_own_paddle(self, view: View, slot: int) -> None:
        """A small arrow in the lane between the wall and the player's own paddle, pointing at it."""
        assert view.rules is not None and view.state is not None
        layout = court_layout(view.rules, *self.screen.get_size())
        x, y, w, h = layout.rect(*paddle_rects(view.rules, view.state)[slot])
        lane = layout.x(view.rules.paddle_margin) - layout.left  # the wall-to-paddle gap, in pixels
        size = max(3, min(lane // 3, 12))
        mid = y + h // 2
        if slot == 0:
            tip = x - max(2, lane // 6)
            points = [(tip, mid), (tip - size, mid - size), (tip - size, mid + size)]
        else:
            tip = x + w + max(2, lane // 6)
            points = [(tip, mid), (tip + size, mid - size), (tip + size, mid + size)]
        self.pygame.draw.polygon(self.screen, ALERT, points)

    def _draw_overlay(self, view: View) -> None:
        lines = overlay_lines(view)
        y = self.screen.get_height() - 22 * len(lines) - 8
        for line in lines:
            draw_text(self.screen, line, 10, y, 22, INFO)
            y += 22
