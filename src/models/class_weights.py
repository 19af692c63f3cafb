"""Class weights from class counts (`model.class_weights`), a plain function of the counts: the counts of
a training split's classes, or the positive counts of each label of a multi-label set (as `pos_weight`).

- `inv_freq`: w_c = N / (K * n_c), N the samples counted, K the classes that have any; the weighted mean
  over the training samples is 1 (scikit-learn's `class_weight="balanced"`).
- `effective_num` (Cui et al., 2019, "Class-Balanced Loss Based on Effective Number of Samples"):
  w_c proportional to (1 - beta) / (1 - beta ** n_c), scaled so that the K weights sum to K; beta -> 0
  weighs every class alike, beta -> 1 approaches inverse frequency.

A class with no samples gets weight 0 (nothing of it is in the loss).
"""

from __future__ import annotations

from collections.abc import Sequence

from src.errors import require

METHODS = ("none", "inv_freq", "effective_num")


def check_method(method: object, beta: object) -> None:
    require(method in METHODS, f"model.class_weights must be one of {', '.join(METHODS)}, got {method!r}.")
    require(isinstance(beta, (int, float)) and not isinstance(beta, bool) and 0 <= beta < 1,
            f"model.class_weights_beta must be a number in [0, 1), e.g. 0.999 or 0.9999, got {beta!r}.")


def class_weights(counts: Sequence[int], method: str, beta: float = 0.999) -> list[float]:
    """One weight per class (or label) of `counts` (each a non-negative sample count); `none` gives 1s."""
    check_method(method, beta)
    counts = [int(n) for n in counts]
    require(all(n >= 0 for n in counts) and any(counts), f"class weights need sample counts, got {counts}.")
    present = [n for n in counts if n > 0]
    if method == "none":
        return [1.0] * len(counts)
    if method == "inv_freq":
        total = sum(present)
        return [total / (len(present) * n) if n else 0.0 for n in counts]
    raw = [(1.0 - beta) / (1.0 - beta**n) if n else 0.0 for n in counts]
    scale = len(present) / sum(raw)
    return [w * scale for w in raw]
