"""Seeded input scripts: reproducible random inputs for synctest, benches, tests and fuzzing."""

from __future__ import annotations

from lockstep import rng


def random_inputs(seed: int, frames: int) -> list[int]:
    """Packed frame inputs where each player holds a key for a few frames, as people do."""
    state = rng.seed_state(seed)
    out: list[int] = []
    held = 0
    left = 0
    for _ in range(frames):
        if left == 0:
            state = rng.next_state(state)
            bits = rng.output(state)
            held = bits & 0x0F
            left = 1 + (bits >> 4) % 12
        left -= 1
        out.append(held)
    return out
