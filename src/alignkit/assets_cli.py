"""``alignkit assets``: prepare and list the offline models."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from alignkit import assets


def _table(rows: list[dict]) -> Table:
    t = Table(title="alignkit offline assets", show_lines=True)
    t.add_column("name", no_wrap=True)
    t.add_column("kind", no_wrap=True)
    t.add_column("ready", no_wrap=True)
    t.add_column("MB", justify="right", no_wrap=True)
    t.add_column("license / source / path", overflow="fold")
    for r in rows:
        t.add_row(r["name"], r["kind"], "[green]yes[/]" if r["ready"] else "[red]no[/]", f"{r['size_mb']:.1f}",
                  f"{r['license']}\n{r['source']}\n{r['path']}")
    return t


def register(app: typer.Typer) -> None:
    @app.command("assets")
    def assets_cmd(
        action: str = typer.Argument("list", help="'list' (show status) or 'prepare' (build missing assets)"),
        name: list[str] = typer.Option([], "--name", help="only these assets (default: all)"),
    ) -> None:
        """Prepare (convert/build once, cached in $ALIGNKIT_HOME) and list the offline models."""
        from alignkit.errors import AlignkitError

        if action not in ("list", "prepare"):
            raise AlignkitError(f"unknown action {action!r}; use 'alignkit assets list' or 'alignkit assets prepare'")
        names = list(dict.fromkeys(name)) or list(assets.ASSETS)
        for n in names:  # checked before anything is prepared or listed
            if n not in assets.ASSETS:
                raise AlignkitError(f"unknown asset {n!r}; choose one of: {', '.join(assets.ASSETS)}")
        console = Console()
        if action == "prepare":
            for n in names:
                if not assets.is_ready(n):
                    with console.status(f"preparing {n} ..."):
                        assets.prepare(n)
                    console.print(f"prepared {n}")
        console.print(_table([assets.describe(n) for n in names]))
