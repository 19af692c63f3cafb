"""Recipes benchmark: every training recipe of docs/recipes.md with and without it, over several seeds,
in one process on this machine.

    .venv/bin/python -m benchmarks.recipes                  # digits MLP, 20 epochs, seeds 1 2 3 (a few minutes)
    .venv/bin/python -m benchmarks.recipes --quick          # 1 epoch, 1 seed: a smoke test
    .venv/bin/python -m benchmarks.recipes --data fashion_mnist --model lenet --epochs 5
    .venv/bin/python -m benchmarks.recipes --only label_smoothing,ema --seeds 1 2 3 4 5

Each run is `src.train`'s own `train(cfg)` on the composed config (default callbacks, no logger), so
"with" and "without" differ only in the recipe's overrides; the data split is fixed
(`data.split_seed`), the seed changes initialisation, data order and augmentation draws. Runs
without a recipe are shared by the recipes with the same baseline. Writes a Markdown table of the
test accuracy (mean +- sample std over the seeds) to benchmarks/results/recipes-<date>.md and
every run to recipes-<date>.json (`--quick` adds `-quick` to the names).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def recipes(epochs: int) -> dict[str, dict]:
    """name -> {"base": overrides of the run without it, "with": overrides added for it, "what": text}."""
    warmup = max(1, epochs // 10)
    return {
        "label_smoothing": {"base": [], "with": ["model.label_smoothing=0.1"], "what": "label smoothing 0.1"},
        "mixup": {"base": [], "with": ["model.mixup_alpha=0.2"], "what": "mixup, alpha 0.2"},
        "cutmix": {"base": [], "with": ["model.cutmix_alpha=1.0"], "what": "cutmix, alpha 1.0"},
        "random_erasing": {"base": [], "with": ["augment=erasing"], "what": "random erasing (cutout), p 0.5"},
        "tta_flip": {"base": [], "with": ["model.tta_flip=true"], "what": "test-time horizontal flip"},
        "ema": {"base": [], "with": ["callbacks=[default,ema]", "callbacks.ema.decay=0.99"],
                "what": "EMA of the weights, decay 0.99"},
        "warmup": {"base": ["scheduler=cosine"], "with": [f"scheduler.warmup_epochs={warmup}"],
                   "what": f"cosine schedule: + {warmup} warmup epoch(s)"},
        "no_decay_bias_norm": {"base": ["optimizer=adamw"], "with": ["optimizer.decay_bias_and_norm=false"],
                               "what": "AdamW: no weight decay on biases and norms"},
        "grad_clip": {"base": [], "with": ["trainer.gradient_clip_val=1.0"], "what": "gradient clipping at norm 1"},
        "lr_find": {"base": [], "with": ["tuner=lr_find"], "what": "learning rate from Lightning's lr finder"},
    }


def run_once(overrides: list[str]) -> dict:
    """One training run, quietly; its final metrics and seconds, or the error in one line."""
    from src.config.compose import compose_run_config
    from src.errors import explain
    from src.train import train

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                metrics = train(compose_run_config(overrides, out_dir))
        except Exception as exc:  # a recipe this checkout does not support: recorded, the benchmark goes on
            err = explain(exc)
            return {"error": str(err) if err else f"{type(exc).__name__}: {exc}",
                    "seconds": time.perf_counter() - started}
    keys = ("test/acc", "test/loss", "val/acc", "train/loss")
    return {**{k: float(metrics[k]) for k in keys if k in metrics}, "seconds": time.perf_counter() - started}


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def summarise(name: str, spec: dict, base_runs: list[dict], with_runs: list[dict]) -> dict:
    base = [r["test/acc"] for r in base_runs if "test/acc" in r]
    with_ = [r["test/acc"] for r in with_runs if "test/acc" in r]
    errors = sorted({r["error"] for r in base_runs + with_runs if "error" in r})
    delta = statistics.mean(with_) - statistics.mean(base) if base and with_ else None
    return {"recipe": name, "what": spec["what"], "overrides": spec["with"], "baseline": spec["base"],
            "without": base, "with": with_, "delta": delta, "errors": errors}


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"# Training recipes: test accuracy with and without ({meta['date']})",
        "",
        f"`{meta['command']}` — data `{meta['data']}`, model `{meta['model']}`, {meta['epochs']} epoch(s), "
        f"seeds {', '.join(map(str, meta['seeds']))}; mean ± sample std of `test/acc` (best checkpoint by "
        f"`val/acc`) over the seeds. {meta['machine']}; torch {meta['torch']}, lightning {meta['lightning']}; "
        f"{meta['minutes']:.1f} min in all.",
        "",
        "| recipe | what | overrides | without | with | Δ (with − without) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        overrides = " ".join(f"`{o}`" for o in r["baseline"] + r["overrides"])
        delta = f"{r['delta']:+.4f}" if r["delta"] is not None else "-"
        lines.append(f"| {r['recipe']} | {r['what']} | {overrides} | {mean_std(r['without'])} | "
                     f"{mean_std(r['with'])} | {delta} |")
    failed = [r for r in rows if r["errors"]]
    if failed:
        lines += ["", "Runs that failed:", ""]
        lines += [f"- {r['recipe']}: {'; '.join(r['errors'])}" for r in failed]
    lines += ["", "Digits are 8x8 and the runs short: a recipe meant for long image runs (mixup, cutmix, EMA,",
              "TTA with a mirror image that is not the same digit) may well cost accuracy here; this measures,",
              "it does not tune.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 seed (smoke test)")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--only", default="", help="comma-separated recipe names (default: all)")
    parser.add_argument("--out-dir", default=str(RESULTS))
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run, e.g. data.batch_size=128")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds = 1, args.seeds[:1]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import lightning
    import torch

    for name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available", "Restoring states", ... per run
        logging.getLogger(name).setLevel(logging.WARNING)

    table = recipes(args.epochs)
    chosen = [n for n in args.only.split(",") if n] or list(table)
    unknown = sorted(set(chosen) - set(table))
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {sorted(table)}")
    common = [f"data={args.data}", f"model={args.model}", f"trainer.max_epochs={args.epochs}", "logger=none",
              "callbacks.progress_bar=null", "callbacks.model_summary=null", *args.overrides]

    started = time.perf_counter()
    runs: list[dict] = []
    cache: dict[tuple, dict] = {}

    def run(overrides: list[str], seed: int, recipe: str, variant: str) -> dict:
        key = (tuple(overrides), seed)
        if key not in cache:
            cache[key] = run_once([*common, *overrides, f"seed={seed}"])
            result = cache[key]
            runs.append({"recipe": recipe, "variant": variant, "seed": seed, "overrides": overrides, **result})
            shown = f"test/acc={result['test/acc']:.4f}" if "test/acc" in result else f"error: {result['error']}"
            print(f"{recipe:>20} {variant:>7} seed {seed}: {shown} ({result['seconds']:.1f} s)", flush=True)
        return cache[key]

    rows = []
    for name in chosen:
        spec = table[name]
        base = [run(spec["base"], s, name if spec["base"] else "baseline", "without") for s in args.seeds]
        with_ = [run(spec["base"] + spec["with"], s, name, "with") for s in args.seeds]
        rows.append(summarise(name, spec, base, with_))

    today = date.today().isoformat()
    suffix = "-quick" if args.quick else ""
    meta = {
        "date": today, "data": args.data, "model": args.model, "epochs": args.epochs, "seeds": args.seeds,
        "overrides": args.overrides, "command": "python -m benchmarks.recipes " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, "
                   f"{'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}",
        "torch": torch.__version__, "lightning": lightning.__version__,
        "minutes": (time.perf_counter() - started) / 60,
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"recipes-{today}{suffix}.md", out / f"recipes-{today}{suffix}.json"
    md.write_text(markdown(rows, meta))
    js.write_text(json.dumps({"meta": meta, "summary": rows, "runs": runs}, indent=2) + "\n")
    print(markdown(rows, meta))
    print(f"wrote {md} and {js}")
    return {"meta": meta, "summary": rows, "runs": runs}


if __name__ == "__main__":
    main()
