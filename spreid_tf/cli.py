"""What the command-line tools share: ordinary mistakes and Ctrl-C end in one line, not a traceback.

    if __name__ == "__main__":
        define_flags()
        app.run(cli.one_line_errors(main))

A missing file or folder, a wrong name or value (FileNotFoundError, FileExistsError,
NotADirectoryError, PermissionError, ValueError, KeyError: the library's messages name
the path, flag or value and what was expected) prints `error: <message>` and exits with
status 2; Ctrl-C prints `interrupted` and exits with 130 at once: by then the exception has
unwound through the writers (temporary files removed, nothing half-written), and the
process skips TensorFlow's teardown, which takes another second or more.
SPREID_TF_TRACEBACK=1 shows the traceback instead (for a bug report).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from typing import Callable

ORDINARY_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
                   ValueError, KeyError)
TRACEBACK_VARIABLE = "SPREID_TF_TRACEBACK"


def message(error: BaseException) -> str:
    """The error's message as a user should read it (a KeyError's without the quotes repr adds)."""
    if isinstance(error, KeyError) and len(error.args) == 1:
        return str(error.args[0])
    return str(error) or type(error).__name__


def quiet_tensorflow_logs() -> None:
    """Hides TensorFlow's C++ log lines unless TF_CPP_MIN_LOG_LEVEL is set; before TensorFlow is imported.

    For the tools that report each image that does not decode themselves (conversion,
    batch inference, warm-up files): the decoder's own `E0000 jpeg_mem.cc ... Premature end
    of JPEG data` lines would repeat what the tool's skip line says, in a rawer form.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _interrupted_while_loading(signum, frame) -> None:
    print("interrupted", file=sys.stderr, flush=True)
    os._exit(130)


def interrupt_quietly_while_loading() -> None:
    """Ctrl-C before `main` starts (while TensorFlow loads, ~3 s) ends in one line too.

    A binary calls this first thing under `if __name__ == "__main__":`, before its heavy
    imports: until `one_line_errors` starts `main`, Ctrl-C prints `interrupted` and exits
    with 130 (nothing has been written yet); Python's import machinery would print a
    KeyboardInterrupt traceback. An ignored SIGINT (a background job) stays ignored.
    """
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted_while_loading)


def exit_now(status: int) -> None:
    """Flushes the output streams and the log handlers, then ends the process without teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(status)


def one_line_errors(main: Callable[[list[str]], None],
                    on_interrupt: Callable[[int], None] = exit_now) -> Callable[[list[str]], None]:
    """Wraps an absl `main` so that ORDINARY_ERRORS and Ctrl-C end in one line.

    `on_interrupt(130)` ends the process after Ctrl-C (`exit_now`; tests pass `sys.exit`).
    """

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> None:
        if signal.getsignal(signal.SIGINT) is _interrupted_while_loading:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if os.environ.get(TRACEBACK_VARIABLE):
            return main(argv)
        try:
            return main(argv)
        except ORDINARY_ERRORS as e:
            print(f"error: {message(e)}", file=sys.stderr, flush=True)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr, flush=True)
            on_interrupt(130)

    return wrapped
