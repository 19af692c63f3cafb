"""Checks that a stratified split can be made, so that a small data set fails in one sentence instead of
inside scikit-learn (`train_test_split(stratify=...)` and `StratifiedKFold` need enough samples per class)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from src.errors import require


def check_stratifiable(targets: Sequence[int], class_names: Sequence[str], fraction: float | None,
                       num_folds: int | None, what: str, where: str) -> None:
    """Refuse, naming the class, a split of `targets` into `what` (e.g. "validation") by `fraction`
    or into `num_folds` folds that scikit-learn could not stratify. `where` names the data."""
    counts = Counter(int(t) for t in targets)
    n, k = len(targets), len(counts)
    label, smallest = min(counts.items(), key=lambda item: item[1]) if counts else (0, 0)
    name = class_names[label] if label < len(class_names) else str(label)
    need = num_folds or 2
    require(
        smallest >= need,
        f"class {name!r} has only {smallest} sample(s) in {where}, but carving the {what} split by class needs at "
        f"least {need}; add samples of it, or remove the class.",
    )
    if num_folds or fraction is None:
        return
    held = math.ceil(fraction * n)
    require(
        k <= held <= n - k,
        f"{where} has {n} samples in {k} classes: a {what} fraction of {fraction} holds {held}, but a stratified "
        f"split needs at least one sample of every class on each side; change the fraction or add samples.",
    )
