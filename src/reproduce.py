"""`python -m src.reproduce`: run the course notes' recipes as ONE Hydra multirun of `src.train`, then write
`docs/course_notes_results.md`, one row per course-notes result: the notes' number, ours, the difference, data,
epochs, device and wall time.

    python -m src.reproduce                                   # every experiment with a `notes_result` block
    python -m src.reproduce --only notes0_iris_2features notes3_xor_mlp
    python -m src.reproduce --max-epochs 1                    # a quick smoke run of every recipe
    python -m src.reproduce -- trainer=gpu                    # overrides after `--` go to every job
    python -m src.reproduce --from-sweep logs/reproduce/<time>   # rewrite the table from a finished sweep

What each of the course notes reports lives in its experiment file (`conf/experiment/notes*.yaml`, block
`notes_result`: notes, metric, value, relation, stand_in, note); the report reads it back from
each job's `.hydra/config.yaml`. Before launching, every recipe's data is loaded once with the data
module's own loader (no download): a recipe whose files are missing is not launched, and its row
says so, with the files, the folder to put them in and the command to run. Metric `params` is the
parameter count of the net the config builds, so it needs no data and no training.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import src.config.resolvers  # noqa: F401  (registers ${len:...})
from src.builders import build_datamodule
from src.config.names import CONF
from src.errors import UserError, exits_on_user_error, require
from src.runs.reproduction import Recipe, job_results, relative, results_page

DEFAULT_OUTPUT = Path("docs") / "course_notes_results.md"


# --- which recipes ------------------------------------------------------------------------------
def experiment_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def compose_recipes(only: list[str] | None, overrides: list[str]) -> list[Recipe]:
    """The recipes to run: `only`, or every experiment whose config has a `notes_result` block."""
    names = experiment_names()
    unknown = [n for n in only or [] if n not in names]
    require(not unknown, f"--only {' '.join(unknown)}: no such experiment; choose from {', '.join(names)}.")
    recipes = []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for name in only or names:
            try:
                cfg = compose("train", overrides=[f"experiment={name}", *overrides])
            except (HydraException, OmegaConfBaseException) as exc:
                raise UserError(f"experiment={name} with {' '.join(overrides) or 'no overrides'} does not compose "
                                f"({str(exc).splitlines()[0]}).") from None
            block = cfg.get("notes_result")
            if block is None:
                require(not only, f"experiment={name} has no notes_result block: nothing to compare it with.")
                continue
            recipes.append(Recipe(name, cfg, OmegaConf.to_container(block, resolve=True)))
    GlobalHydra.instance().clear()
    return recipes


def data_problem(data_cfg: Any, cache: dict[str, str | None]) -> str | None:
    """None when the data module loads its files (without downloading), else what to do, in words."""
    plain = OmegaConf.to_container(data_cfg, resolve=True)
    key = json.dumps({k: plain.get(k) for k in ("_target_", "data_dir", "system_dir", "name")}, sort_keys=True)
    if key in cache:
        return cache[key]
    if "download" in plain:
        plain["download"] = False
    problem, datamodule = None, None
    try:
        datamodule = build_datamodule(plain)
        datamodule.prepare_data()  # unzips files already there (download is off)
        datamodule.load()
    except UserError as exc:
        expected = getattr(datamodule, "expected_files", None)
        if callable(expected):
            what, folder = expected(Path(plain["data_dir"]).expanduser())
            problem = f"put {what} in {relative(folder)}"
        else:
            problem = str(exc).rstrip(".")
    cache[key] = problem
    return problem


# --- running ------------------------------------------------------------------------------------
def device_description() -> str:
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    threads = torch.get_num_threads()  # what each job uses too (same environment: OMP_NUM_THREADS)
    return f"cpu ({os.cpu_count()} cores, {threads} thread{'s' if threads > 1 else ''} per job)"


def run_sweep(recipes: list[Recipe], sweep_dir: Path, max_epochs: int | None, overrides: list[str]) -> int:
    """One Hydra multirun of `src.train` over the recipes' experiments; returns its exit code."""
    command = [sys.executable, "-m", "src.train", "-m", f"experiment={','.join(r.name for r in recipes)}",
               f"hydra.sweep.dir={sweep_dir}"]
    if max_epochs is not None:
        command.append(f"trainer.max_epochs={max_epochs}")
    command += overrides
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "reproduce.json").write_text(json.dumps({
        "command": " ".join(command[1:]), "device": device_description(), "max_epochs": max_epochs,
        "started": datetime.now().isoformat(timespec="seconds"),
    }, indent=2) + "\n")
    print(f"reproduce: {len(recipes)} job(s) in one sweep: python {' '.join(command[1:])}", flush=True)
    return subprocess.run(command, check=False).returncode


def job_dirs(sweep_dir: Path) -> dict[str, Path]:
    """{experiment name: job folder} of a finished sweep, from each job's `.hydra/overrides.yaml`."""
    jobs = {}
    for overrides in sorted(sweep_dir.glob("*/.hydra/overrides.yaml")):
        for item in OmegaConf.load(overrides):
            if str(item).startswith("experiment="):
                jobs[str(item).split("=", 1)[1]] = overrides.parent.parent
    return jobs


# --- entry point --------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    overrides: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, overrides = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m src.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="experiments to run (default: every course-notes recipe)")
    parser.add_argument("--max-epochs", type=int, metavar="N", help="cut every recipe to N epochs (a smoke run)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"the table (default {DEFAULT_OUTPUT})")
    parser.add_argument("--sweep-dir", type=Path, help="the sweep folder (default logs/reproduce/<date>_<time>)")
    parser.add_argument("--from-sweep", type=Path, metavar="DIR", help="write the table from a finished sweep")
    args = parser.parse_args(argv)
    if args.max_epochs is not None:
        require(args.max_epochs > 0, f"--max-epochs must be a positive integer, got {args.max_epochs}.")
    if args.from_sweep is not None:
        require(args.from_sweep.is_dir(), f"--from-sweep {args.from_sweep}: no such folder; pass a sweep folder "
                "that python -m src.reproduce wrote (logs/reproduce/<time>).")
    return args, overrides


def reproduce(argv: list[str]) -> Path:
    args, overrides = parse_args(argv)
    recipes = compose_recipes(args.only, overrides)
    require(bool(recipes), "no experiment has a notes_result block; nothing to reproduce.")
    cache: dict[str, str | None] = {}
    if args.from_sweep is not None:
        sweep_dir: Path | None = args.from_sweep
        info_file = sweep_dir / "reproduce.json"
        info = json.loads(info_file.read_text()) if info_file.is_file() else {"device": device_description()}
        done = job_dirs(sweep_dir)
        for recipe in recipes:  # why the sweep did not run the others
            recipe.missing = None if recipe.name in done else data_problem(recipe.config.data, cache)
    else:
        for recipe in recipes:
            recipe.missing = data_problem(recipe.config.data, cache)
        runnable = [r for r in recipes if not r.missing]
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        sweep_dir = args.sweep_dir or Path("logs") / "reproduce" / stamp
        info = {"device": device_description(), "max_epochs": args.max_epochs}
        if runnable:
            started = time.time()
            code = run_sweep(runnable, sweep_dir, args.max_epochs, overrides)
            info = json.loads((sweep_dir / "reproduce.json").read_text())
            print(f"reproduce: the sweep ended with exit code {code} after {time.time() - started:.0f} s", flush=True)
        else:
            sweep_dir = None
    jobs = job_dirs(sweep_dir) if sweep_dir is not None and sweep_dir.is_dir() else {}
    for recipe in recipes:
        recipe.job_dir = jobs.get(recipe.name)
        if recipe.job_dir is not None:
            recipe.missing = None
        recipe.results = job_results(recipe)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(results_page(recipes, sweep_dir, info))
    print(f"reproduce: wrote {args.output} ({len(recipes)} rows)", flush=True)
    return args.output


@exits_on_user_error
def main(argv: list[str] | None = None) -> None:
    reproduce(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
