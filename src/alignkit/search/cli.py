"""``alignkit search attack|defence``: the worst-case searches on Optuna (mounted by the root CLI)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Worst-case search on Optuna: the strongest attack on a model (attack), or a defence's "
                       "hyperparameters against attacks, stability and trainability (defence). Several workers "
                       "share one study: run the same command with the same --output-dir and --storage.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _attack(config) -> None:
    from alignkit.search.attack import search_attack

    res = search_attack(config)
    print(f"{res.run_dir}/results.json")


def _defence(config) -> None:
    from alignkit.search.defence import search_defence

    res = search_defence(config)
    print(f"{res.run_dir}/results.json")


def _register() -> None:
    from alignkit.config import config_command
    from alignkit.search.attack import AttackSearchConfig
    from alignkit.search.defence import DefenceSearchConfig

    config_command(app, AttackSearchConfig, "attack", _attack,
                   help="Search the attacker's hyperparameters (lr, steps, warm-up, schedule, full/LoRA, template, "
                        "samples, seed, data; a YAML space) for the worst post-attack harmfulness of --model; reports "
                        "the raw and the capability-bounded (--epsilon) worst case. Prints the results.json path.")
    config_command(app, DefenceSearchConfig, "defence", _defence,
                   help="Multi-objective search over a defence's hyperparameters: worst-case post-attack "
                        "harmfulness, capability loss before attack, trainability. Writes the Pareto front to "
                        "report.html and results.json; prints the results.json path.")


_register()
