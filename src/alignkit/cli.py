"""The ``alignkit`` command line: a thin layer over the Python API.

Each subsystem owns its commands in its own ``cli`` module; this file only mounts them and turns user
errors (:class:`AlignkitError`) into one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from alignkit.errors import AlignkitError

app = typer.Typer(help="alignkit: harmful fine-tuning attacks, immunization defences (RepNoise), the "
                       "immunization conditions, and counterfactual explanations of learned rewards.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _print_version(value: bool) -> None:
    if value:
        from alignkit import __version__

        print(__version__)
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context,
          version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="print the version and exit")) -> None:
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())
        raise typer.Exit(0)


# (module, sub-command group name or None when the module adds plain commands via register(app))
_PARTS = [
    ("alignkit.assets_cli", None),
    ("alignkit.data.cli", "data"),
    ("alignkit.judges.cli", "judge"),
    ("alignkit.attacks.cli", None),
    ("alignkit.defences.cli", None),
    ("alignkit.conditions.cli", None),
    ("alignkit.cte.cli", "cte"),
    ("alignkit.search.cli", "search"),
    ("alignkit.matrix.cli", None),
]


def _mount() -> None:
    for module, group in _PARTS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):  # the part itself is not built (yet)
                continue
            raise
        if group is None:
            mod.register(app)
        else:
            app.add_typer(mod.app, name=group)


_mount()


INTERRUPTED = 130  # exit status after Ctrl-C (128 + SIGINT)


def main(argv: list[str] | None = None) -> None:
    """The ``alignkit`` entry point: every user mistake (a bad option value, an unknown option, an
    :class:`AlignkitError`) is one line ``error: ...`` on stderr and exit status 2, never a traceback."""
    try:  # typer >= 0.20 vendors click as typer._click
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover - older typer on click
        from click import exceptions as click_exc

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from alignkit.io import redact, url_secrets

    # credentials of any URL on the command line (e.g. --storage postgresql://user:password@host/db) are masked in
    # every error line, whoever wrote the message (a database driver echoes its DSN)
    secrets = tuple(s for a in (sys.argv[1:] if argv is None else argv) if "://" in str(a)
                    for s in url_secrets(str(a)))

    def _print_error(text: str) -> None:
        print(redact(text, secrets), file=sys.stderr)

    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="alignkit", standalone_mode=False)
    except AlignkitError as exc:
        _print_error(f"error: {exc}")
        raise SystemExit(exc.exit_code) from None
    except click_exc.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx is not None else str(exc))
        raise SystemExit(0) from None
    except click_exc.UsageError as exc:
        where = f" (see 'alignkit {exc.ctx.command_path.split(' ', 1)[1]} --help')" if (
            exc.ctx is not None and " " in exc.ctx.command_path) else " (see 'alignkit --help')"
        msg = ' '.join(exc.format_message().replace('Value error, ', '').split())
        _print_error(f"error: {msg}{where}")
        raise SystemExit(2) from None
    except click_exc.ClickException as exc:
        _print_error(f"error: {' '.join(exc.format_message().split())}")
        raise SystemExit(exc.exit_code) from None
    except (typer.Abort, KeyboardInterrupt):
        rv = INTERRUPTED
    if rv == INTERRUPTED:  # typer turns Ctrl-C into exit status 130
        print("interrupted; run the same command again to resume from the last checkpoint (pass --overwrite to "
              "start over instead)", file=sys.stderr)
        raise SystemExit(INTERRUPTED)
    if isinstance(rv, int) and rv:
        raise SystemExit(rv)


if __name__ == "__main__":
    main()
