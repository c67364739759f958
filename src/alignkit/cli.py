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


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="print the version and exit")) -> None:
    if version:
        from alignkit import __version__

        print(__version__)
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


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except AlignkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
