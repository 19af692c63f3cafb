"""Paired statistics for two classifiers tested on the same samples, and for two settings run over the same seeds.

- `mcnemar_exact`: McNemar's exact test. Only the discordant samples (one run right, the other wrong) carry
  evidence; under "equally accurate" the number A alone got right is Binomial(discordant, 1/2), so the
  p-value is scipy's exact two-sided binomial test.
- `bootstrap_difference`: a percentile bootstrap interval of accuracy(A) - accuracy(B), resampling samples
  (the same resample for both runs, which keeps the pairing), seeded.
- `seed_tests`: the mean per-seed difference of a metric, the paired t-test and Wilcoxon's signed-rank test
  (scipy), and whether that many pairs can reach p < 0.05 at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

RESAMPLES = 10_000
ALPHA = 0.05


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact p-value from the discordant counts (A right and B wrong, B right and A wrong)."""
    discordant = a_only + b_only
    return 1.0 if discordant == 0 else float(stats.binomtest(a_only, discordant, 0.5).pvalue)


def bootstrap_difference(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0,
                         level: float = 0.95, chunk: int = 1000) -> tuple[float, float]:
    """(low, high) percentile interval of mean(correct_a) - mean(correct_b) over paired resamples of the samples."""
    difference = np.asarray(correct_a, dtype=np.float64) - np.asarray(correct_b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = len(difference)
    means = np.concatenate([difference[rng.integers(0, n, size=(min(chunk, resamples - start), n))].mean(1)
                            for start in range(0, resamples, chunk)])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def smallest_wilcoxon_p(pairs: int) -> float:
    """The smallest two-sided p-value the exact signed-rank test can give with `pairs` non-zero differences:
    every difference of one sign, 2 / 2^pairs."""
    return min(1.0, 2.0 / 2**pairs)


def seed_tests(differences: Sequence[float]) -> dict[str, float | int | str | None]:
    """Mean difference, paired t-test and Wilcoxon signed-rank p-values of per-seed differences (A - B), and a
    plain note when the number of seeds is too small for a test to reach p < 0.05."""
    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    out: dict[str, float | int | str | None] = {"pairs": n, "mean_difference": float(d.mean()) if n else None,
                                                "std_difference": float(d.std(ddof=1)) if n > 1 else None,
                                                "t_test_p": None, "wilcoxon_p": None, "note": ""}
    if n >= 2 and np.any(d != d[0]):
        out["t_test_p"] = float(stats.ttest_1samp(d, 0.0).pvalue)
    nonzero = int(np.count_nonzero(d))
    if nonzero >= 1:
        out["wilcoxon_p"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    notes = []
    if n < 2:
        notes.append(f"{n} paired seed(s): no test can say anything; run at least 6 seeds of each")
    elif smallest_wilcoxon_p(nonzero) >= ALPHA:
        notes.append(f"with {nonzero} non-zero paired difference(s) Wilcoxon's signed-rank test cannot reach "
                     f"p < {ALPHA} (its smallest possible p is {smallest_wilcoxon_p(nonzero):.3g}), and the t-test "
                     f"leans on normally distributed differences it cannot check with so few; run at least 6 seeds "
                     "of each")
    if n >= 2 and out["t_test_p"] is None:
        notes.append("every seed gives the same difference, so the t-test is undefined")
    out["note"] = "; ".join(notes)
    return out
