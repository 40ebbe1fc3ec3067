"""The `pong` script. Everything that takes a while to import (the signal module included) loads
inside the `try`, so a Ctrl-C while the commands load ends quietly, and SIGTERM/SIGHUP are taken
over before they load. (Before this runs, while Python itself starts, a signal still acts as
Python's defaults make it.)"""

import sys

from tools import exitcodes  # imports nothing


def console() -> None:
    try:
        from tools import stopping

        stopping.install(stopping.interrupt, stopping.TERMINATION_SIGNALS)
        from tools.cli import main

        code = main(exiting=True)
    except KeyboardInterrupt:  # while the commands load: nothing was done yet
        _ignore_stop_signals()
        code = exitcodes.INTERRUPTED
        sys.stderr.write("pong: error: interrupted\n")
        if "--json" in sys.argv[1:]:
            sys.stdout.write(f'{{"ok": false, "error": "interrupted", "exit_code": {code}}}\n')
    sys.exit(code)


def _ignore_stop_signals() -> None:
    """Best effort: a second signal now would print the traceback the first one was kept from."""
    import signal

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
