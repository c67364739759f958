"""User-facing errors.

Every mistake a user can make (a missing file, a bad column, an unknown model name, an unreachable hub id)
is raised as :class:`AlignkitError` with a one-line message that says what is wrong and how to fix it.
The CLI prints it as ``error: <message>`` and exits with status 2, never with a traceback.
"""

from __future__ import annotations


class AlignkitError(Exception):
    """A user error: one line, what is wrong and how to fix it. The CLI exits with code 2."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line
