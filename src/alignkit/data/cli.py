"""``alignkit data list`` and ``alignkit data show NAME``.

The root CLI mounts :data:`app` and turns :class:`AlignkitError` into ``error: ...`` with exit code 2; these
commands catch nothing. ``python -m alignkit.data.cli ...`` runs them standalone with the same error handling.
"""

from __future__ import annotations

import sys
from collections import Counter

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Datasets: list them, show counts per split and category and a few rows.",
                  no_args_is_help=True, add_completion=False)


def _console() -> Console:
    return Console(width=max(Console().width, 160) if not sys.stdout.isatty() else None)


def _trunc(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


@app.command("list")
def list_datasets() -> None:
    """Every dataset: rows, splits (seed 0), categories, license and source."""
    from alignkit import data

    table = Table(title="alignkit datasets (seed 0)", show_lines=False)
    for col in ("name", "record", "rows", "splits", "categories", "license", "source"):
        table.add_column(col, overflow="fold")
    for name in data.names():
        inf = data.info(name)
        splits = ", ".join(f"{s} {n}" for s, n in inf.splits.items())
        table.add_row(name, inf.record_type, str(inf.rows), splits, str(len(inf.categories)), inf.license,
                      inf.source)
    _console().print(table)


@app.command("show")
def show(name: str = typer.Argument(..., help="dataset name (see `alignkit data list`)"),
         split: str = typer.Option("train", "--split", help="split for the example rows (or 'all')"),
         n: int = typer.Option(3, "--n", help="number of example rows to print"),
         seed: int = typer.Option(0, "--seed", help="split seed"),
         width: int = typer.Option(160, "--width", help="truncate example text fields to this many characters"),
         ) -> None:
    """Counts per split and per category, and the first N rows of a split (text truncated)."""
    from alignkit import data
    from alignkit.data.base import record_category
    from alignkit.errors import AlignkitError

    if n < 0:
        raise AlignkitError(f"--n must be 0 or more, got {n}")
    if width < 20:
        raise AlignkitError(f"--width must be 20 or more, got {width}")
    if seed < 0:  # as --data-seed of attack / defend: a negative seed is not another split
        raise AlignkitError(f"--seed must be 0 or more, got {seed}")
    inf = data.info(name)
    splits = data.build(name, seed)
    rows = data.load(name, split=split, seed=seed)  # validates the split name
    con = _console()
    con.print(f"[bold]{name}[/bold] ({inf.record_type}): {inf.description}")
    con.print(f"source: {inf.source}\nlicense: {inf.license}" + (f"\nnotes: {inf.notes}" if inf.notes else ""))

    cats = sorted({record_category(r) or "-" for rs in splits.values() for r in rs})
    t = Table(title=f"rows per split and category (seed {seed})")
    t.add_column("category")
    for s in splits:
        t.add_column(s, justify="right")
    t.add_column("total", justify="right")
    counts = {s: Counter(record_category(r) or "-" for r in rs) for s, rs in splits.items()}
    for c in cats:
        t.add_row(c, *(str(counts[s][c]) for s in splits), str(sum(counts[s][c] for s in splits)))
    t.add_row("[bold]all[/bold]", *(str(len(rs)) for rs in splits.values()),
              str(sum(len(rs) for rs in splits.values())))
    con.print(t)

    if n:
        con.print(f"[bold]first {min(n, len(rows))} of {len(rows)} rows of split {split!r}[/bold]")
        for r in rows[:n]:
            d = r.model_dump()
            con.print(f"- id={d.pop('id')} source={_trunc(d.pop('source'), 80)}", markup=False, highlight=False)
            for k, v in d.items():
                con.print(f"    {k}: {_trunc(v, width) if isinstance(v, str) else v}", markup=False,
                          highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point with the root CLI's error handling (AlignkitError -> 'error: ...', exit 2)."""
    from alignkit.errors import AlignkitError

    try:
        app(args=argv, standalone_mode=False)
    except AlignkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # click-style usage errors (non-standalone mode): print them as click would
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return int(e.exit_code)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
