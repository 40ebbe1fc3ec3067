"""Player input: two bits per player per frame, and both players packed into one byte.

Bit 0 is UP, bit 1 is DOWN; both or neither means stay. The packed frame byte holds the left
player in bits 0-1 and the right player in bits 2-3, which is also how replays store a frame.
"""

from __future__ import annotations

NEUTRAL = 0
UP = 1
DOWN = 2
INPUT_MASK = UP | DOWN


def pack(left: int, right: int) -> int:
    """Both players' inputs of a frame as one byte."""
    return (left & INPUT_MASK) | ((right & INPUT_MASK) << 2)


def unpack(frame_input: int) -> tuple[int, int]:
    return frame_input & INPUT_MASK, (frame_input >> 2) & INPUT_MASK
