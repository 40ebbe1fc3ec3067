"""Rendering and the replay viewer, headless (SDL_VIDEODRIVER=dummy): pixels where the state says."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pytest

pygame = pytest.importorskip("pygame")

from lockstep.game import Game  # noqa: E402
from lockstep.rules import UNIT, Rules  # noqa: E402
from lockstep.script import random_inputs  # noqa: E402
from lockstep.state import initial_state  # noqa: E402
from replay.matches import record_inputs  # noqa: E402
from replay.playback import Playback  # noqa: E402
from replay.reader import read_replay  # noqa: E402
from replay.render import (  # noqa: E402
    BACKGROUND,
    FOREGROUND,
    MARGIN,
    SCORE,
    ball_rect,
    court_layout,
    draw_state,
    draw_text,
    paddle_rects,
)
from replay.viewer import PANEL_H, WINDOW_SIZE, Viewer, format_time  # noqa: E402
from replay.writer import ReplayWriter  # noqa: E402

FRAMES = 2400
RULES = Rules(points_to_win=999)


def pixel(surface, x, y):
    return tuple(surface.get_at((x, y)))[:3]


def centre(rect):
    left, top, width, height = rect
    return left + width // 2, top + height // 2


def assert_state_drawn(surface, rules, state, layout):
    """Paddles and ball are FOREGROUND at their centres, and the court is dark just outside them."""
    for box in (*paddle_rects(rules, state), ball_rect(rules, state)):
        rect = layout.rect(*box)
        assert pixel(surface, *centre(rect)) == FOREGROUND, (box, rect)
    left_paddle = layout.rect(*paddle_rects(rules, state)[0])
    outside = (left_paddle[0] + left_paddle[2] + 2, left_paddle[1] + left_paddle[3] // 2)
    assert pixel(surface, *outside) == BACKGROUND


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    path = tmp_path_factory.mktemp("viewer") / "long.replay"
    record_inputs(path, RULES, 5, random_inputs(5, FRAMES), names=("ann", "bob"))
    return read_replay(path)


def reference(replay, frame):
    game = Game(replay.rules, replay.seed)
    game.run(replay.frame_inputs[:frame])
    return game


# --- render.py -----------------------------------------------------------------------------------


def placed_state(rules):
    state = initial_state(rules, 1)
    state.paddle_l = 40 * UNIT
    state.paddle_r = 300 * UNIT
    state.ball_x = 100 * UNIT
    state.ball_y = 250 * UNIT
    state.score_l, state.score_r = 7, 12
    return state


def test_draw_state_at_native_size_puts_everything_at_its_pixel():
    surface = pygame.Surface((640, 480))
    state = placed_state(RULES)
    layout = draw_state(surface, RULES, state)
    assert (layout.left, layout.top, layout.width, layout.height) == (0, 0, 640, 480)
    # 1 px = 256 units: the left paddle is 24..34 px wide at 40..104 px, the ball at (100, 250).
    assert pixel(surface, 29, 70) == FOREGROUND
    assert pixel(surface, 29, 38) == BACKGROUND  # just above the left paddle
    assert pixel(surface, 640 - 29, 330) == FOREGROUND  # right paddle
    assert pixel(surface, 104, 254) == FOREGROUND  # ball centre
    assert pixel(surface, 96, 254) == BACKGROUND  # just left of the ball
    assert pixel(surface, 110, 254) == BACKGROUND  # just right of the ball
    assert_state_drawn(surface, RULES, state, layout)


def test_draw_state_scales_and_letterboxes():
    surface = pygame.Surface((320, 400))
    state = placed_state(RULES)
    layout = draw_state(surface, RULES, state)
    assert (layout.left, layout.top, layout.width, layout.height) == (0, 80, 320, 240)
    assert pixel(surface, 160, 10) == MARGIN and pixel(surface, 160, 390) == MARGIN
    assert pixel(surface, 52, 80 + 127) == FOREGROUND  # ball centre at half scale
    assert_state_drawn(surface, RULES, state, layout)
    wide = pygame.Surface((1000, 300))
    layout = draw_state(wide, RULES, state)
    assert (layout.width, layout.height) == (400, 300) and layout.left == 300
    assert_state_drawn(wide, RULES, state, layout)


def test_draw_state_reads_the_state_and_never_writes_it():
    state = placed_state(RULES)
    before = state.copy()
    draw_state(pygame.Surface((200, 150)), RULES, state, names=("a", "b"))
    assert state == before


def test_score_digits_are_drawn_only_when_asked():
    state = placed_state(RULES)

    def score_pixels(score):
        surface = pygame.Surface((640, 480))
        draw_state(surface, RULES, state, score=score)
        return sum(1 for x in range(200, 440) for y in range(0, 100) if pixel(surface, x, y) == SCORE)

    assert score_pixels(True) > 100
    assert score_pixels(False) == 0


def test_names_are_drawn_beside_the_score_where_no_paddle_covers_them():
    state = placed_state(RULES)
    state.paddle_l = state.paddle_r = 0  # both paddles at the top, where the corners are
    plain, named = pygame.Surface((640, 480)), pygame.Surface((640, 480))
    draw_state(plain, RULES, state)
    draw_state(named, RULES, state, names=("ann", "bob"))
    differs = [
        (x, y) for x in range(0, 640) for y in range(0, 80) if pixel(plain, x, y) != pixel(named, x, y)
    ]
    assert any(x < 320 for x, _ in differs) and any(x > 320 for x, _ in differs)
    layout = court_layout(RULES, 640, 480)
    lanes = [layout.rect(*paddle) for paddle in paddle_rects(RULES, state)]
    for left, _, width, _ in lanes:  # not a pixel of a name in a paddle's lane, however close
        assert not any(left - 2 <= x < left + width + 2 for x, _ in differs)


def test_a_long_name_is_shortened_before_it_reaches_the_paddles_lane():
    state = placed_state(RULES)
    long_name = "a-very-long-name-that-goes-on-and-on"
    plain, named = pygame.Surface((640, 480)), pygame.Surface((640, 480))
    draw_state(plain, RULES, state)
    draw_state(named, RULES, state, names=(long_name, long_name))
    layout = court_layout(RULES, 640, 480)
    left_lane_end = layout.x(RULES.paddle_margin + RULES.paddle_w)
    right_lane_start = layout.x(RULES.field_w - RULES.paddle_margin - RULES.paddle_w)
    differs = [x for x in range(0, 640) for y in range(0, 80) if pixel(plain, x, y) != pixel(named, x, y)]
    assert differs and min(differs) > left_lane_end and max(differs) < right_lane_start


def ink_box(surface):
    """The bounding box (left, top, right, bottom) of every non-black pixel."""
    w, h = surface.get_size()
    lit = [(x, y) for x in range(w) for y in range(h) if pixel(surface, x, y) != (0, 0, 0)]
    return min(x for x, _ in lit), min(y for _, y in lit), max(x for x, _ in lit), max(y for _, y in lit)


@pytest.mark.parametrize("align", ["left", "right", "centre"])
def test_draw_text_anchors_the_text_as_aligned(align):
    surface = pygame.Surface((300, 120))
    width = draw_text(surface, "MMMM", 150, 60, 40, FOREGROUND, align=align)
    assert width > 20
    left, top, right, bottom = ink_box(surface)
    if align == "left":
        assert 150 <= left <= 154 and top >= 60
    elif align == "right":
        assert 146 <= right < 150 and top >= 60
    else:  # the ink's middle is the point given, both ways (within the glyphs' side bearings)
        assert abs((left + right) // 2 - 150) <= 3 and abs((top + bottom) // 2 - 60) <= 6
    with pytest.raises(ValueError, match="align"):
        draw_text(surface, "x", 0, 0, 20, FOREGROUND, align="middle")


def test_other_rules_scale_to_their_own_field():
    rules = Rules(field_w=1000 * UNIT, field_h=500 * UNIT, paddle_h=100 * UNIT, ball_size=20 * UNIT)
    state = placed_state(rules)
    surface = pygame.Surface((500, 400))
    layout = draw_state(surface, rules, state)
    assert (layout.width, layout.height) == (500, 250)
    assert_state_drawn(surface, rules, state, layout)
    assert layout == court_layout(rules, 500, 400)


# --- playback and viewer -------------------------------------------------------------------------


@pytest.mark.parametrize("frame", [0, 1, 179, 180, 181, 1000, 2399, 2400])
def test_seek_lands_on_the_requested_frame(replay, frame):
    playback = Playback(replay)
    assert playback.seek(frame) == frame
    expected = reference(replay, frame)
    assert playback.frame == frame and playback.state == expected.state and playback.chain == expected.chain


def test_seek_back_and_forth_and_step(replay):
    playback = Playback(replay, keyframe_interval=100)
    for target in (2000, 50, 1234, 1233, 1235, 0, 2400, 777):
        playback.seek(target)
        assert playback.state == reference(replay, target).state
    playback.seek(500)
    assert playback.step(+1) == 501 and playback.step(-2) == 499
    assert playback.state == reference(replay, 499).state
    assert playback.seek(-5) == 0 and playback.seek(10**9) == FRAMES


def test_a_seek_simulates_at_most_one_keyframe_interval(replay, monkeypatch):
    playback = Playback(replay, keyframe_interval=120)
    assert playback.build_keyframes(10**9)
    assert playback.keyframes == FRAMES // 120 + 1 and playback.first_bad_frame is None
    steps = []
    original = Game.advance

    def counting(self, frame_input):
        steps.append(1)
        return original(self, frame_input)

    monkeypatch.setattr(Game, "advance", counting)
    for target in (2399, 7, 1319, 1200):
        steps.clear()
        playback.seek(target)
        assert len(steps) < 120


def test_keyframes_are_built_in_slices(replay):
    playback = Playback(replay)
    assert not playback.build_keyframes(1000) and playback.built_to == 1000
    assert playback.build_keyframes(5000) and playback.complete


def test_playback_flags_a_checkpoint_mismatch(tmp_path):
    path = tmp_path / "bad.replay"
    game = Game(RULES, 1)
    with ReplayWriter(str(path), RULES, 1, 0, ("a", "b"), 0) as writer:
        for f in range(1, 301):
            writer.add_frame(3, game.advance(3))
            if f == 200:
                game.state.score_l += 5
        writer.finish("desync")
    playback = Playback(read_replay(path))
    playback.build_keyframes(10**6)
    assert playback.first_bad_frame == 240


def play_for(viewer, ms):
    """Wall time passing in 20 ms ticks (a single long tick is capped: no leap after a stall)."""
    for _ in range(ms // 20):
        viewer.update(20)


def key(k, mod=0):
    return pygame.event.Event(pygame.KEYDOWN, key=k, mod=mod)


def test_viewer_renders_the_state_at_the_current_frame(replay):
    viewer = Viewer(replay)
    surface = pygame.Surface(WINDOW_SIZE)
    layout = court_layout(replay.rules, WINDOW_SIZE[0], WINDOW_SIZE[1] - PANEL_H)
    for frame in (0, 333, 1500, 2400):
        viewer.seek(frame)
        viewer.render(surface)
        state = reference(replay, frame).state
        assert viewer.playback.state == state
        assert_state_drawn(surface, replay.rules, state, layout)


def test_viewer_keys_step_play_speed_and_seek(replay):
    viewer = Viewer(replay)
    viewer.render(pygame.Surface(WINDOW_SIZE))
    viewer.handle_event(key(pygame.K_RIGHT))
    viewer.handle_event(key(pygame.K_RIGHT))
    assert viewer.frame == 2
    viewer.handle_event(key(pygame.K_LEFT))
    assert viewer.frame == 1
    viewer.handle_event(key(pygame.K_RIGHT, pygame.KMOD_SHIFT))
    assert viewer.frame == 61
    viewer.handle_event(key(pygame.K_SPACE))
    assert viewer.playing
    play_for(viewer, 1000)  # one second at x1
    assert viewer.frame == 121
    viewer.handle_event(key(pygame.K_UP))
    assert viewer.speed_label == "x2"
    play_for(viewer, 500)
    assert viewer.frame == 181
    for _ in range(10):
        viewer.handle_event(key(pygame.K_UP))
    assert viewer.speed_label == "x8"
    for _ in range(10):
        viewer.handle_event(key(pygame.K_DOWN))
    assert viewer.speed_label == "x1/4"
    play_for(viewer, 1000)  # a quarter of a second of play
    assert viewer.frame == 196
    viewer.handle_event(key(pygame.K_SPACE))
    play_for(viewer, 1000)
    assert not viewer.playing and viewer.frame == 196
    viewer.handle_event(key(pygame.K_PAGEDOWN))
    assert viewer.frame == 796
    viewer.handle_event(key(pygame.K_PAGEUP))
    assert viewer.frame == 196
    viewer.handle_event(key(pygame.K_END))
    assert viewer.frame == FRAMES
    viewer.handle_event(key(pygame.K_HOME))
    assert viewer.frame == 0
    viewer.handle_event(key(pygame.K_7))
    assert viewer.frame == FRAMES * 7 // 10
    assert viewer.playback.state == reference(replay, viewer.frame).state
    viewer.handle_event(key(pygame.K_q))
    assert not viewer.running


def test_playing_stops_at_the_end_and_space_restarts(replay):
    viewer = Viewer(replay)
    viewer.seek(FRAMES - 10)
    viewer.toggle_play()
    play_for(viewer, 1000)
    assert viewer.frame == FRAMES and not viewer.playing
    viewer.toggle_play()
    assert viewer.frame == 0 and viewer.playing


def test_clicking_the_timeline_seeks(replay):
    viewer = Viewer(replay)
    surface = pygame.Surface(WINDOW_SIZE)
    viewer.render(surface)
    left, top, width, height = viewer.timeline_rect(*WINDOW_SIZE)
    y = top + height // 2
    click = pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(left + width // 2, y), button=1)
    viewer.handle_event(click)
    assert abs(viewer.frame - FRAMES // 2) <= FRAMES // width + 1
    viewer.handle_event(pygame.event.Event(pygame.MOUSEMOTION, pos=(left + width // 4, y), buttons=(1, 0, 0)))
    assert abs(viewer.frame - FRAMES // 4) <= FRAMES // width + 1
    viewer.handle_event(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=(left, y), button=1))
    viewer.handle_event(pygame.event.Event(pygame.MOUSEMOTION, pos=(left, y), buttons=(0, 0, 0)))
    assert viewer.frame > 0  # no longer dragging
    viewer.handle_event(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(left, 10), button=1))
    assert viewer.frame > 0  # a click on the court is not a seek
    viewer.handle_event(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(left, y), button=1))
    assert viewer.frame == 0
    # The rendered timeline fills up to the cursor.
    viewer.seek(FRAMES // 2)
    viewer.render(surface)
    assert pixel(surface, left + width // 4, top + 2) != pixel(surface, left + width * 3 // 4, top + 2)
    viewer.handle_event(pygame.event.Event(pygame.QUIT))
    assert not viewer.running


def test_format_time():
    assert format_time(0) == "00:00.00"
    assert format_time(61 * 60 + 30) == "01:01.50"
    assert format_time(216_000) == "1:00:00.00"


def test_small_text_is_drawn_large_and_scaled_down_so_its_letters_are_spaced_evenly(monkeypatch):
    """SDL_ttf hints small glyphs to whole pixels: "chain" came out as "c hain"."""
    from replay import render

    render._rendered.clear()
    asked = []
    real_font = pygame.font.Font
    monkeypatch.setattr(pygame.font, "Font", lambda name, size: asked.append(size) or real_font(name, size))
    render._fonts.clear()
    surface = pygame.Surface((400, 60))
    width = draw_text(surface, "chain 42014d4e", 0, 0, 16, FOREGROUND)
    assert asked == [16 * render.SUPERSAMPLE]
    assert 60 < width < 200  # the size asked for, not four times it
    assert draw_text(surface, "chain 42014d4e", 0, 0, 16, FOREGROUND) == width  # cached


def test_the_viewer_opens_the_games_window_size():
    from peer.window import WINDOW_SIZE as GAME_WINDOW

    assert WINDOW_SIZE == GAME_WINDOW
