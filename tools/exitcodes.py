"""Exit codes of every `pong` command (a contract: scripts depend on them)."""

OK = 0
CHECK_FAILED = 1  # a desync, a mismatch, a divergence
USAGE = 2  # bad usage or unreadable input
NETWORK = 3  # refused, peer gone, timeout, bad data from the peer


class CommandError(Exception):
    """A user-facing failure: `pong` prints it as one line and exits with `code`."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code
