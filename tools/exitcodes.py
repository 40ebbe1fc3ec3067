"""Exit codes of every `pong` command (a contract: scripts depend on them)."""

OK = 0
CHECK_FAILED = 1  # a desync, a mismatch, a divergence
USAGE = 2  # bad usage or unreadable input
NETWORK = 3  # refused, peer gone, timeout, bad data from the peer
# Ctrl-C, SIGTERM or SIGHUP before a command other than host/join could finish (its work is
# incomplete, so none of the above fits); 128 + SIGINT, as shells report it. host and join treat
# these as the player quitting, with the usual codes.
INTERRUPTED = 130


class CommandError(Exception):
    """A user-facing failure: `pong` prints it as one line and exits with `code`."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code
