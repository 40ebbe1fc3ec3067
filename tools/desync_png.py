"""`pong desync --png OUT`: both states of a divergence side by side, the differing objects marked.

Each panel draws one side's state at the divergence frame (with replay.render, like the viewer
and the game window); every object whose fields differ is outlined in red with its values, the
other side's position of it as a thin blue outline, the ball's velocity as an arrow when it
differs; fields with no object of their own (rng, serve_timer, ...) frame the court. The diff
table goes below.

Imported by tools/desync.py only with `--png`, and pygame only inside the drawing functions: a
missing pygame is a one-line error (exit 2), and headless runs never import it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lockstep.rules import Rules
from lockstep.state import State
from replay.divergence import Check, Side, Verdict
from tools import exitcodes
from tools.exitcodes import CommandError

if TYPE_CHECKING:
    import pygame

PANEL_W, PANEL_H = 480, 360
PAD = 12
TITLE_H = 54  # title and the line under it
CAPTION_H = 24
ROW_H = 18
BG = (16, 16, 20)
TEXT = (225, 225, 225)
DIM = (150, 150, 150)
RED = (255, 40, 40)
GHOST = (60, 160, 255)
MISSING = (48, 48, 56)
LABEL_BG = (40, 0, 0)
VELOCITY_FRAMES = 8  # velocity arrows show where the ball is this many frames later

_BALL_FIELDS = ("ball_x", "ball_y", "ball_vx", "ball_vy")
_OBJECT_FIELDS = ("paddle_l", "paddle_r", "score_l", "score_r")

Rect = tuple[int, int, int, int]


def _object_of(name: str) -> str | None:
    """The object on screen a state field belongs to; None for the invisible ones (rng, ...)."""
    if name in _BALL_FIELDS:
        return "ball"
    return name if name in _OBJECT_FIELDS else None


def _objects(rules: Rules, state: State, layout: Any) -> dict[str, Rect]:
    """Pixel rectangles of the paddles, the ball and the two scores, as draw_state draws them."""
    from replay.render import ball_rect, paddle_rects

    left, right = paddle_rects(rules, state)
    rects = {
        "paddle_l": layout.rect(*left),
        "paddle_r": layout.rect(*right),
        "ball": layout.rect(*ball_rect(rules, state)),
    }
    # The seven-segment score digits (replay.render.draw_state / draw_number).
    digit_h = max(5, layout.height // 8)
    centre = layout.left + layout.width // 2
    gap = max(4, layout.width // 24)
    top = layout.top + max(2, layout.height // 24)
    for name, value, right_aligned in (("score_l", state.score_l, True), ("score_r", state.score_r, False)):
        count = len(str(max(0, value)))
        width = count * max(3, digit_h // 2) + (count - 1) * max(1, digit_h // 5)
        x = centre - gap - width if right_aligned else centre + gap
        rects[name] = (x, top, width, digit_h)
    return rects


def _label(surface: pygame.Surface, text: str, x: int, y: int, size: int = 17) -> None:
    """Red text on a dark backing, kept inside the surface."""
    import pygame

    from replay.render import draw_text

    scratch = pygame.Surface((surface.get_width(), size + 4), pygame.SRCALPHA)
    width = draw_text(scratch, text, 0, 0, size, RED)
    if not width:
        return
    x = max(2, min(x, surface.get_width() - width - 4))
    y = max(2, min(y, surface.get_height() - size - 2))
    surface.fill(LABEL_BG, pygame.Rect(x - 3, y - 2, width + 6, size + 1))
    surface.blit(scratch, (x, y), pygame.Rect(0, 0, width, size + 4))


def _draw_panel(
    surface: pygame.Surface,
    rules: Rules,
    state: State | None,
    other: State | None,
    names: tuple[str, str],
    diff: list[dict[str, Any]],
    key: str,
) -> None:
    """One court: the state, each differing object outlined in red with its values, the other
    side's position of it as a thin blue outline, and the ball's velocity when it differs."""
    import pygame

    from replay.render import draw_state, draw_text

    if state is None:
        surface.fill(MISSING)
        draw_text(surface, "state not known at this frame", 16, surface.get_height() // 2 - 12, 24, TEXT)
        return
    layout = draw_state(surface, rules, state, names)
    marked: dict[str, list[str]] = {}
    for item in diff:
        obj = _object_of(item["field"])
        if obj is not None:
            marked.setdefault(obj, []).append(f"{item['field']} {item[key]}")
    mine = _objects(rules, state, layout)
    theirs = _objects(rules, other, layout) if other is not None else {}
    for obj, labels in marked.items():
        if obj in theirs and theirs[obj] != mine[obj]:
            pygame.draw.rect(surface, GHOST, pygame.Rect(theirs[obj]).inflate(4, 4), 1)
        box = pygame.Rect(mine[obj]).inflate(16, 16)
        pygame.draw.rect(surface, RED, box, 3)
        if obj == "ball" and any(f in ("ball_vx", "ball_vy") for f in (i["field"] for i in diff)):
            for s, colour in ((other, GHOST), (state, RED)):
                if s is not None:
                    start = (
                        layout.x(s.ball_x + rules.ball_size // 2),
                        layout.y(s.ball_y + rules.ball_size // 2),
                    )
                    end = (
                        layout.x(s.ball_x + rules.ball_size // 2 + VELOCITY_FRAMES * s.ball_vx),
                        layout.y(s.ball_y + rules.ball_size // 2 + VELOCITY_FRAMES * s.ball_vy),
                    )
                    pygame.draw.line(surface, colour, start, end, 2)
        below = box.bottom + 3 + 18 * len(labels) < surface.get_height()
        y = box.bottom + 3 if below else box.top - 3 - 18 * len(labels)
        for n, text in enumerate(labels):
            _label(surface, text, box.left, y + 18 * n)
    hidden = [item for item in diff if _object_of(item["field"]) is None]
    if hidden:  # fields with no object of their own (rng, serve_timer, ...): a frame round the court
        pygame.draw.rect(surface, RED, pygame.Rect(layout.left, layout.top, layout.width, layout.height), 2)
        text = ", ".join(f"{item['field']} {item[key]}" for item in hidden)
        _label(surface, text, layout.left + 8, layout.top + layout.height - 24)


def _titles(sides: Sequence[Side], checks: Sequence[Check], verdict: Verdict) -> tuple[str, str]:
    fields = ", ".join(item["field"] for item in verdict.diff)
    frame = verdict.first_frame
    legend = "red: differs, blue: the other side's position"
    if not verdict.diverged:
        return "no divergence", f"the states at frame {verdict.diff_frame} are equal"
    if verdict.kind == "header":
        return f"different matches: {fields} differ", "they differ from frame 0"
    low, high = verdict.frame_range or (frame, frame)
    what = (
        "A and B diverge" if len(sides) == 2 else f"{os.path.basename(sides[0].path)} departs from its inputs"
    )
    title = f"{what} at frame {frame}: {fields or 'states not known'}"
    if not verdict.exact:
        title = f"{what} between frames {low} and {high}: {fields or 'no field diff'}"
    if verdict.kind == "inputs":
        return title, f"the inputs differ at frame {verdict.input_frame}.  {legend}"
    who = []
    for side, check in zip(sides, checks):
        model = check.model
        if side.base is None or check.consistent:
            continue
        name = f"{side.label}'s game" if len(sides) == 2 else "the recorded game"
        if model is None:
            who.append(f"{name} left its inputs in frames {check.last_good + 1}..{check.first_bad}")
        else:
            how = "found by search" if model.source == "search" else "from its report"
            who.append(
                f"{name} left its inputs right after frame {model.frame}: {model.describe_changes()}, {how}"
            )
    sub = "; ".join(who) or "the recorded chains differ"
    return title, f"{sub}.  {legend}"


def draw_png(
    out: str, sides: Sequence[Side], checks: Sequence[Check], verdict: Verdict, labels: tuple[str, str]
) -> str:
    """Both states side by side, differing objects marked, the diff below; returns the path."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        import pygame

        from replay.render import draw_text
    except ImportError as exc:
        raise CommandError(f"cannot draw {out}: pygame is not available ({exc})", exitcodes.USAGE) from None

    diff = verdict.diff if verdict.diverged else []
    width = 2 * PANEL_W + 3 * PAD
    height = TITLE_H + CAPTION_H + PANEL_H + PAD + (max(1, len(diff)) + 1) * ROW_H + PAD
    surface = pygame.Surface((width, height))
    surface.fill(BG)
    title, sub = _titles(sides, checks, verdict)
    draw_text(surface, title, PAD, 6, 26, RED if verdict.diverged else TEXT)
    draw_text(surface, sub, PAD, 32, 18, DIM)
    frame = verdict.diff_frame
    pair = len(sides) == 2
    if pair:
        panels = [
            (s.label, os.path.basename(s.path), s.rules, s.names, s.base is not None and not c.consistent)
            for s, c in zip(sides, checks)
        ]
    else:
        s = sides[0]
        panels = [
            ("recorded", os.path.basename(s.path), s.rules, s.names, True),
            ("re-simulated", "by this build", s.rules, s.names, False),
        ]
    states = (verdict.state_a, verdict.state_b)
    for n, (label, name, rules, names, departed) in enumerate(panels):
        left = PAD + n * (PANEL_W + PAD)
        shown = draw_text(surface, f"{label}  {name}  frame {frame}", left, TITLE_H + 3, 20, TEXT)
        if departed and verdict.diverged and verdict.kind == "chain":
            draw_text(surface, "departed from its inputs", left + shown + 16, TITLE_H + 3, 20, RED)
        panel = surface.subsurface(pygame.Rect(left, TITLE_H + CAPTION_H, PANEL_W, PANEL_H))
        _draw_panel(panel, rules, states[n], states[1 - n], names, diff, "ab"[n])
    y = TITLE_H + CAPTION_H + PANEL_H + PAD
    columns = (PAD, PAD + 170, PAD + 420, PAD + 670)
    for x, text in zip(columns, ("field", labels[0], labels[1], "b - a")):
        draw_text(surface, text, x, y, 18, DIM)
    draw_text(surface, "positions and speeds in 1/256 px", width - PAD, y, 18, DIM, "right")
    if not diff:
        known = verdict.state_a is not None and verdict.state_b is not None
        draw_text(surface, "the states are equal" if known else "no field diff", PAD, y + ROW_H, 18, TEXT)
    for n, item in enumerate(diff, start=1):
        a, b = item["a"], item["b"]
        for x, text in zip(columns, (item["field"], str(a), str(b), f"{b - a:+d}")):
            draw_text(surface, text, x, y + n * ROW_H, 18, RED)
    try:
        with open(out, "wb") as file:  # a file object and a hint: PNG whatever the name ends in
            pygame.image.save(surface, file, "out.png")
    except (pygame.error, OSError) as exc:
        raise CommandError(f"cannot write {out}: {exc}", exitcodes.USAGE) from None
    return out
