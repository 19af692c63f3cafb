"""Notes 3's data-set table (resolution, classes, train / test sizes), generated from the data
configs: resolution and class count from each `conf/data/<name>.yaml` (`input_shape`,
`num_classes`), the official split sizes from `OFFICIAL_SIZES`, and the validation part each
config carves out of the training split (`val_fraction`, or digits' `test_fraction`). Each config is
composed through its defaults list, so the keys it shares with `conf/data/base/` count too.

    python -m src.visualize datasets          # prints the Markdown table and writes datasets.md
"""

from __future__ import annotations

import math

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from src.config.names import CONF
from src.runs.tables import markdown_table

DATA_DIR = CONF / "data"

# name: (data set, train, test, per class in train / test or None when the classes are not balanced)
OFFICIAL_SIZES: dict[str, tuple[str, int, int, tuple[int, int] | None]] = {
    "cifar10": ("CIFAR-10", 50_000, 10_000, (5_000, 1_000)),
    "cifar100": ("CIFAR-100", 50_000, 10_000, (500, 100)),
    "stl10": ("STL-10", 5_000, 8_000, (500, 800)),
    "mnist": ("MNIST", 60_000, 10_000, None),
    "fashion_mnist": ("Fashion-MNIST", 60_000, 10_000, (6_000, 1_000)),
    "svhn": ("SVHN", 73_257, 26_032, None),
    "digits": ("scikit-learn digits", 1_797, 0, None),  # one set; the config's test_fraction splits it
}
ORDER = ("cifar10", "cifar100", "stl10", "mnist", "fashion_mnist", "svhn", "digits")  # the notes' order first


def _composed_data_configs(names: list[str]) -> dict[str, dict]:
    """{name: the composed `data` node of `data=<name>`, unresolved}, inside a running Hydra app or not."""
    def each() -> dict[str, dict]:
        return {n: OmegaConf.to_container(compose(overrides=[f"+data={n}"]).data, resolve=False) for n in names}

    if GlobalHydra.instance().is_initialized():  # `python -m src.visualize`: its search path is conf/
        return each()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return each()


def data_configs() -> dict[str, dict]:
    """{config name: its composed config as a dict} for the image data sets (3-D `input_shape`)."""
    configs = {}
    for name, cfg in _composed_data_configs(sorted(p.stem for p in DATA_DIR.glob("*.yaml"))).items():
        shape = cfg.get("input_shape") or []
        if len(shape) == 3 and all(isinstance(d, int) for d in shape):
            configs[name] = cfg
    return configs


def dataset_rows() -> list[dict[str, str]]:
    """One row per real image data set (those with official sizes: not `random_images`), in the
    notes' order, then any other."""
    configs = {n: c for n, c in data_configs().items() if n in OFFICIAL_SIZES}
    names = [n for n in ORDER if n in configs] + sorted(n for n in configs if n not in ORDER)
    rows = []
    for name in names:
        cfg = configs[name]
        channels, height, width = cfg["input_shape"]
        title, train, test, per_class = OFFICIAL_SIZES.get(name, (name, 0, 0, None))
        if "test_fraction" in cfg:  # one set split by the config
            test = math.ceil(train * float(cfg["test_fraction"]))
            train -= test
        val = math.ceil(train * float(cfg.get("val_fraction", 0)))
        rows.append({
            "config": f"`data={name}`",
            "data set": title,
            "resolution": f"{height} x {width} x {channels}",
            "classes": str(cfg["num_classes"]),
            "train": _count(train, per_class[0] if per_class else None) if train else "?",
            "test": _count(test, per_class[1] if per_class else None) if test else "?",
            "validation here": f"{val:,} of the train images ({float(cfg.get('val_fraction', 0)):.0%})",
        })
    return rows


def _count(n: int, per_class: int | None) -> str:
    return f"{n:,} ({per_class:,} per class)" if per_class else f"{n:,}"


def render(cfg, output) -> None:
    rows = dataset_rows()
    table = markdown_table(list(rows[0]), [list(row.values()) for row in rows]) + "\n"
    note = ("Resolution and classes: `input_shape` and `num_classes` of `conf/data/<name>.yaml`; train / test: the "
            "official splits (digits: the config's `test_fraction` of 1,797); validation: carved from train by "
            "`data.val_fraction`.\n")
    print(table + "\n" + note, flush=True)
    output.text("datasets", table + "\n" + note)
