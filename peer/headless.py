"""The headless front end: a bot plays, nothing is drawn, a signal asks to quit."""

from __future__ import annotations

from lockstep.bots import Bot, make_bot
from lockstep.state import State
from peer.protocol import Established
from peer.session import SessionResult, View


class HeadlessFrontend:
    def __init__(self, bot_name: str) -> None:
        self.bot_name = bot_name
        self.bot: Bot | None = None
        self.quit = False  # set by a signal handler

    def started(self, established: Established) -> None:
        # Seeded from the match, so the same seed plays the same match on every run.
        self.bot = make_bot(self.bot_name, established.rules, established.local_slot, established.seed)

    def local_input(self, state: State) -> int:
        return self.bot.decide(state) if self.bot is not None else 0

    def show(self, view: View) -> None:
        pass

    def quit_requested(self) -> bool:
        return self.quit

    def finished(self, result: SessionResult) -> None:
        pass
