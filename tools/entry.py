"""The `pong` script. Everything that takes a while to import (the signal module included) loads
inside the `try`, so a Ctrl-C in the first moments ends quietly too, never with a traceback; and
SIGTERM/SIGHUP are taken over before the commands load."""

import sys

from tools import exitcodes  # imports nothing


def console() -> None:
    try:
        from tools import stopping

        stopping.install(stopping.interrupt, stopping.TERMINATION_SIGNALS)
        from tools.cli import main

        code = main(exiting=True)
    except KeyboardInterrupt:  # while the commands load: nothing was done yet
        code = exitcodes.INTERRUPTED
        sys.stderr.write("pong: error: interrupted\n")
        if "--json" in sys.argv[1:]:
            sys.stdout.write(f'{{"ok": false, "error": "interrupted", "exit_code": {code}}}\n')
    sys.exit(code)
