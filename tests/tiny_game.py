"""A second deterministic game, not Pong: proof that the engine, the pair and synctest know no Pong.

Its whole state is a frame counter and a 32-bit xorshift word stirred by each frame's input; its
chain is BLAKE2b over the previous chain and that state, as Pong's is. Integers only.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class TinySnapshot:
    frame: int
    word: int
    chain: bytes


class TinyGame:
    def __init__(self, seed: int, end_at: int | None = None) -> None:
        self.frame = 0
        self.word = (seed & _MASK) or 1  # xorshift never leaves 0
        self.chain = hashlib.blake2b(b"tiny" + struct.pack("<Q", seed), digest_size=8).digest()
        self.end_at = end_at

    @property
    def finished(self) -> bool:
        return self.end_at is not None and self.frame >= self.end_at

    @property
    def state(self) -> int:
        """What an input source is shown (peer.match hands `game.state` to it)."""
        return self.word

    def advance(self, frame_input: int) -> bytes:
        x = self.word ^ (frame_input + 1) << 11
        x ^= (x << 13) & _MASK
        x ^= x >> 17
        x ^= (x << 5) & _MASK
        self.word = x & _MASK or 1
        self.frame += 1
        self.chain = hashlib.blake2b(
            self.chain + struct.pack("<QI", self.frame, self.word), digest_size=8
        ).digest()
        return self.chain

    def save(self) -> TinySnapshot:
        return TinySnapshot(self.frame, self.word, self.chain)

    def restore(self, snapshot: TinySnapshot) -> None:
        self.frame, self.word, self.chain = snapshot.frame, snapshot.word, snapshot.chain


class NudgedTinyGame(TinyGame):
    """The tiny game whose word is off by one right after frame `at_frame` (a divergence)."""

    def __init__(self, seed: int, at_frame: int, end_at: int | None = None) -> None:
        super().__init__(seed, end_at)
        self.at_frame = at_frame

    def advance(self, frame_input: int) -> bytes:
        super().advance(frame_input)
        if self.frame == self.at_frame:
            self.word ^= 1
            self.chain = hashlib.blake2b(self.chain, digest_size=8).digest()
        return self.chain
