"""Every data, model and experiment choice composes to the values recorded in
`tests/golden/composed_configs.json`: sharing keys through base configs (defaults lists) must not change
what a run gets.

After a deliberate config change, regenerate the file with `python -m tests.test_config_composition`
and check that `git diff tests/golden/` shows only that change.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from src.config.names import CONF
from tests.own_data import own_data

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden" / "composed_configs.json"
NEUTRAL_ROOT = "<root>"

def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _neutral(value: Any, root: str) -> Any:
    """`value` with the run's root folder replaced by NEUTRAL_ROOT (paths differ between machines)."""
    if isinstance(value, dict):
        return {k: _neutral(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_neutral(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, NEUTRAL_ROOT)
    return value


def composed_nodes(root: Path) -> dict[str, dict[str, Any]]:
    """{"data=X" | "model=Y" | "experiment=Z": {"data": ..., "model": ...}} resolved, paths neutral."""
    from hydra.core.global_hydra import GlobalHydra

    from src.config.compose import compose_run_config
    from src.config.names import plain

    entries = [f"data={c}" for c in choices("data")] + [f"model={c}" for c in choices("model")]
    entries += [f"experiment={c}" for c in choices("experiment")]
    nodes = {}
    try:
        for entry in entries:
            group, choice = entry.split("=")
            cfg = compose_run_config([entry, *own_data(root, group, choice), f"paths.root_dir={root}"], root / "run",
                                     cwd=root)
            nodes[entry] = _neutral({"data": plain(cfg.data), "model": plain(cfg.model)}, str(root))
    finally:
        GlobalHydra.instance().clear()
    return nodes


@pytest.fixture(scope="module")
def now(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return composed_nodes(tmp_path_factory.mktemp("compose"))


@pytest.fixture(scope="module")
def expected() -> dict[str, dict[str, Any]]:
    return json.loads(GOLDEN.read_text())


def test_every_choice_is_in_the_golden_file(now, expected):
    assert sorted(now) == sorted(expected), "a choice was added or removed: regenerate the golden file"


@pytest.mark.parametrize("entry", [f"data={c}" for c in choices("data")]
                         + [f"model={c}" for c in choices("model")]
                         + [f"experiment={c}" for c in choices("experiment")])
def test_composed_data_and_model_equal_the_golden_file(now, expected, entry):
    assert entry in expected, f"{entry} is not in {GOLDEN.name}: regenerate it (see the module docstring)"
    assert now[entry]["data"] == expected[entry]["data"]
    assert now[entry]["model"] == expected[entry]["model"]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        nodes = composed_nodes(Path(folder).resolve())
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(nodes, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN.relative_to(ROOT)}: {len(nodes)} entries")
