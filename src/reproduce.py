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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from src.errors import UserError, exits_on_user_error, require

CONF = Path(__file__).resolve().parents[1] / "conf"
DEFAULT_OUTPUT = Path("docs") / "course_notes_results.md"


@dataclass
class Recipe:
    """One experiment: its composed config, what the notes report, and whether its data is here."""

    name: str
    config: Any  # DictConfig composed with `experiment=<name>`
    notes_result: dict[str, Any]
    missing: str | None = None  # why it was not run (data missing), or None
    job_dir: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)


# --- which recipes ------------------------------------------------------------------------------
def experiment_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def compose_recipes(only: list[str] | None, overrides: list[str]) -> list[Recipe]:
    """The recipes to run: `only`, or every experiment whose config has a `notes_result` block."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import src.config.resolvers  # noqa: F401

    names = experiment_names()
    unknown = [n for n in only or [] if n not in names]
    require(not unknown, f"--only {' '.join(unknown)}: no such experiment; choose from {', '.join(names)}.")
    recipes = []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for name in only or names:
            try:
                cfg = compose("train", overrides=[f"experiment={name}", *overrides])
            except Exception as exc:
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
    from omegaconf import OmegaConf

    from src.config.build import build_datamodule

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


def relative(path: Path | str) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path) + "/"


# --- running ------------------------------------------------------------------------------------
def device_description() -> str:
    import torch

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
    from omegaconf import OmegaConf

    jobs = {}
    for overrides in sorted(sweep_dir.glob("*/.hydra/overrides.yaml")):
        for item in OmegaConf.load(overrides):
            if str(item).startswith("experiment="):
                jobs[str(item).split("=", 1)[1]] = overrides.parent.parent
    return jobs


# --- results ------------------------------------------------------------------------------------
def count_parameters(config: Any) -> int:
    from omegaconf import OmegaConf

    from src.models.classifier import build_net

    net = build_net(OmegaConf.to_container(config.model.net, resolve=True))
    return sum(p.numel() for p in net.parameters())


def job_results(recipe: Recipe) -> dict[str, Any]:
    """Metrics, epochs / steps, wall time and the notes_result block of a job folder."""
    from omegaconf import OmegaConf

    job = recipe.job_dir
    out: dict[str, Any] = {}
    if job is None:
        return out
    config = OmegaConf.load(job / ".hydra" / "config.yaml")
    recipe.config = config
    recipe.notes_result = OmegaConf.to_container(config.get("notes_result") or {}, resolve=True)
    metrics_file, failed = job / "metrics.json", job / "failed.json"
    if metrics_file.is_file():
        record = json.loads(metrics_file.read_text())
        out["metrics"] = record["metrics"]
        # src.train records its device and wall time there; else: from the config's to the metrics' file time
        started = (job / ".hydra" / "config.yaml").stat().st_mtime
        out["wall_s"] = record.get("wall_time_s") or metrics_file.stat().st_mtime - started
        out["device"] = record.get("device")
    elif failed.is_file():
        out["error"] = json.loads(failed.read_text()).get("error", "failed")
    last = job / "checkpoints" / "last.ckpt"
    if last.is_file():
        import torch  # loaded only for a job with a checkpoint: the entry point starts without torch or Lightning

        from src.training.lightning_internals import epochs_trained

        ckpt = torch.load(last, map_location="cpu", weights_only=True)
        out["epochs"] = epochs_trained(ckpt)
        out["steps"] = int(ckpt.get("global_step", 0))
    return out


def fmt(value: Any, metric: str) -> str:
    if value is None:
        return "—"
    return f"{int(value):,}" if metric == "params" else f"{float(value):.4f}"


def device_of(job_device: str | None, sweep_device: str) -> str:
    """The job's own device ("cuda:0", "cpu") where it recorded one, named as the sweep's description
    ("cuda (NVIDIA H100 ...)", "cpu (16 cores)") when they are the same kind."""
    if not job_device or job_device.split(":")[0] == sweep_device.split(" ")[0]:
        return sweep_device
    return job_device


def table_row(recipe: Recipe, device: str) -> dict[str, str]:
    result = recipe.notes_result
    metric = str(result.get("metric", "test/acc"))
    value = result.get("value")
    relation = str(result.get("relation") or "=")
    res = recipe.results
    if metric == "params":
        ours: float | None = count_parameters(recipe.config)
    else:
        ours = (res.get("metrics") or {}).get(metric)
    stand_in = result.get("stand_in")
    if value is None or ours is None:
        difference = "—"
    elif stand_in:
        difference = "n/a (stand-in)"
    elif relation == "<=":
        within = ours <= value + 1e-9
        difference = f"within (≤ {fmt(value, metric)})" if within else f"above the bound by {ours - value:.4f}"
    else:
        difference = f"{int(ours - value):+,}" if metric == "params" else f"{ours - value:+.4f}"
    data = str(recipe.config.data.get("name"))
    status = []
    if recipe.missing:
        status.append(f"**not run: data missing**: {recipe.missing}, then "
                      f"`python -m src.train experiment={recipe.name}` (with network access it downloads them itself)")
    elif res.get("error"):
        status.append(f"**failed**: {res['error']}")
    elif recipe.job_dir is None:
        status.append(f"**not run**: not in this sweep (`python -m src.reproduce --only {recipe.name}`)")
    elif "metrics" not in res:
        status.append(f"**no result**: see {relative(recipe.job_dir)}train.log")
    if stand_in:
        status.append(f"stand-in: {stand_in}")
    if result.get("note"):
        status.append(str(result["note"]))
    ran = "metrics" in res
    epochs = f"{res['epochs']:,} ({res['steps']:,} steps)" if ran and "epochs" in res else "—"
    notes_value = fmt(value, metric) if value is None else f"{'≤ ' if relation == '<=' else ''}{fmt(value, metric)}"
    return {
        "notes": str(result.get("notes", "?")),
        "experiment": f"`{recipe.name}`",
        "metric": metric,
        "notes' number": notes_value,
        "ours": fmt(ours, metric),
        "difference": difference,
        "data": data + (" (stand-in)" if stand_in else ""),
        "epochs": epochs,
        "device": device_of(res.get("device"), device) if ran else "—",
        "wall time": f"{res['wall_s']:.0f} s" if ran and "wall_s" in res else "—",
        "status and notes": "; ".join(status),
    }


def markdown(recipes: list[Recipe], sweep_dir: Path | None, info: dict[str, Any]) -> str:
    rows = [table_row(r, info.get("device", "?")) for r in recipes]
    header = list(rows[0]) if rows else []
    lines = [
        "# The course notes' results, reproduced",
        "",
        f"Generated by `python -m src.reproduce` on {datetime.now().strftime('%Y-%m-%d %H:%M')}"
        + (f" from the sweep `{relative(sweep_dir)}`" if sweep_dir else "") + ".",
    ]
    if info.get("command"):
        lines.append(f"Jobs: `python {info['command']}`.")
    if info.get("max_epochs") is not None:
        lines.append(f"**Quick run: every recipe was cut to `trainer.max_epochs={info['max_epochs']}`**, so the "
                     "numbers are not the course notes' full recipes.")
    lines += [
        "",
        "`notes' number`: what the course notes report (`notes_result` in `conf/experiment/<experiment>.yaml`); "
        "`ours`: the final test metric of the run (`metrics.json`; `params`: counted on the net the config builds); "
        "`difference`: ours - notes'; `epochs`: trained epochs and optimizer steps (`last.ckpt`); `wall time`: the "
        "job's, from its config to its metrics file. Stand-in rows run the notes' recipe on another data set and are "
        "not comparable with the notes' number.",
        "",
    ]
    if rows:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(row[h].replace("|", "\\|") for h in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


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
    args.output.write_text(markdown(recipes, sweep_dir, info))
    print(f"reproduce: wrote {args.output} ({len(recipes)} rows)", flush=True)
    return args.output


@exits_on_user_error
def main(argv: list[str] | None = None) -> None:
    reproduce(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
