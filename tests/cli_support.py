"""The ``alignkit`` root command run in-process (the same ``alignkit.cli.main`` the console script calls, with its
one-line errors and exit statuses), for tests that do not need a separate process: a subprocess costs a Python
start and a torch/transformers import (seconds of CPU) per call. Tests of what only a real process shows (signals,
several processes, the console script itself) keep their subprocesses."""

from __future__ import annotations


def run_alignkit(args: list, monkeypatch, capsys, env: dict | None = None) -> tuple[int, str, str]:
    """``alignkit ARGS`` in this process: (exit status, stdout, stderr). ``env`` entries are set for the call
    (restored by ``monkeypatch`` after the test)."""
    import sys

    from alignkit import cli

    for k, v in (env or {}).items():
        monkeypatch.setenv(k, str(v))
    args = [str(a) for a in args]
    monkeypatch.setattr(sys, "argv", ["alignkit", *args])
    capsys.readouterr()  # drop what the test printed before
    code = 0
    try:
        cli.main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err
