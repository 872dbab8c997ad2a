"""What the command-line tools share: ordinary mistakes and Ctrl-C end in one line, not a traceback.

    if __name__ == "__main__":
        define_flags()
        app.run(cli.one_line_errors(main))

A missing file or folder, a wrong name or value (FileNotFoundError, FileExistsError,
NotADirectoryError, PermissionError, ValueError, KeyError: the library's messages name
the path, flag or value and what was expected) prints `error: <message>` and exits with
status 2; Ctrl-C prints `interrupted` and exits with 130. SPREID_TF_TRACEBACK=1 shows the
traceback instead (for a bug report).
"""

from __future__ import annotations

import functools
import os
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


def one_line_errors(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wraps an absl `main` so that ORDINARY_ERRORS and Ctrl-C end in one line."""

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> None:
        if os.environ.get(TRACEBACK_VARIABLE):
            return main(argv)
        try:
            return main(argv)
        except ORDINARY_ERRORS as e:
            print(f"error: {message(e)}", file=sys.stderr, flush=True)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr, flush=True)
            sys.exit(130)

    return wrapped
