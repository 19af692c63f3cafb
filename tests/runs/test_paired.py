"""`src.compare`'s statistics on constructed prediction files and simulated runs with known answers, and its
one-sentence refusals."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from src.runs.paired import bootstrap_difference, mcnemar_exact, seed_tests


def write_run(folder: Path, true: list[int], predicted: list[int], samples: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "test_predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sample", "true", "predicted", "loss", "p_0", "p_1", "p_2"])
        for i, (t, p) in enumerate(zip(true, predicted)):
            writer.writerow([samples[i] if samples else str(i), t, p, "0.1", "0.3", "0.3", "0.4"])
    return folder


def constructed_pair(tmp_path: Path, both_right: int, a_only: int, b_only: int, both_wrong: int) -> tuple[Path, Path]:
    """Two runs whose predictions agree and disagree on exactly the given numbers of samples."""
    true, pred_a, pred_b = [], [], []
    for count, a_right, b_right in ((both_right, 1, 1), (a_only, 1, 0), (b_only, 0, 1), (both_wrong, 0, 0)):
        for k in range(count):
            label = k % 3
            true.append(label)
            pred_a.append(label if a_right else (label + 1) % 3)
            pred_b.append(label if b_right else (label + 2) % 3)
    return write_run(tmp_path / "run_a", true, pred_a), write_run(tmp_path / "run_b", true, pred_b)


def exact_mcnemar_by_hand(b: int, c: int) -> float:
    """Two-sided exact p from its definition: twice the binomial tail of the smaller count, at most 1."""
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n)


@pytest.mark.parametrize("a_only,b_only", [(7, 2), (12, 3), (5, 5), (0, 6), (20, 11)])
def test_mcnemar_p_values_of_constructed_prediction_files_equal_scipys_exact_binomial_test(
        tmp_path, cli_in_process, a_only, b_only):
    run_a, run_b = constructed_pair(tmp_path, both_right=60, a_only=a_only, b_only=b_only, both_wrong=4)
    result = cli_in_process("src.compare", str(run_a), str(run_b), "--out", "cmp", "--resamples", "500")
    assert result.returncode == 0, result.output
    report = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert (report["a_right_b_wrong"], report["b_right_a_wrong"]) == (a_only, b_only)
    expected = stats.binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert report["mcnemar_p"] == pytest.approx(expected, rel=1e-12)
    assert report["mcnemar_p"] == pytest.approx(exact_mcnemar_by_hand(a_only, b_only), rel=1e-9)
    assert f"McNemar's exact test p = {expected:.4g}" in result.stdout
    with open(tmp_path / "cmp" / "disagreements.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == a_only + b_only and sum(r["right"] == "a" for r in rows) == a_only


def test_mcnemar_without_discordant_samples_is_one():
    assert mcnemar_exact(0, 0) == 1.0


def test_bootstrap_interval_covers_the_true_difference_on_simulated_runs():
    """Runs right with probability 0.85 and 0.80 on 1,500 samples (correlated, as two models on one test set
    are): the 95 % interval covers the true difference 0.05 in about 95 % of simulated test sets."""
    rng = np.random.default_rng(123)
    covered = 0
    trials = 40
    for trial in range(trials):
        shared = rng.random(1500)
        right_a = shared < 0.85
        right_b = np.where(rng.random(1500) < 0.5, shared < 0.80, rng.random(1500) < 0.80)
        low, high = bootstrap_difference(right_a, right_b, resamples=2000, seed=trial)
        covered += low <= 0.05 <= high
    assert covered >= 34, covered  # 95 % of 40 is 38; 34 or fewer would be a 2 % event for a 95 % interval
    low, high = bootstrap_difference(right_a, right_b, seed=0)  # the default 10,000 resamples, seeded
    assert (low, high) == bootstrap_difference(right_a, right_b, seed=0) and low < high


def test_seed_tests_equal_scipys_paired_tests_and_say_when_seeds_are_too_few():
    a = np.array([0.91, 0.93, 0.92, 0.95, 0.94, 0.93, 0.96])
    b = np.array([0.90, 0.91, 0.92, 0.92, 0.93, 0.90, 0.93])
    result = seed_tests(a - b)
    assert result["t_test_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert result["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a - b).pvalue)
    assert result["note"] == ""
    few = seed_tests((a - b)[[0, 1, 3]])
    assert "cannot reach p < 0.05" in few["note"] and "0.25" in few["note"]
    assert "no test" in seed_tests([0.01])["note"]


def test_bad_comparisons_are_one_sentence(tmp_path, cli_in_process):
    run_a, run_b = constructed_pair(tmp_path, 30, 3, 2, 1)
    other = write_run(tmp_path / "other", [0, 1, 2], [0, 1, 1])
    shuffled = write_run(tmp_path / "shuffled", [0] * 36, [0] * 36, samples=[str(35 - i) for i in range(36)])
    (tmp_path / "empty").mkdir()
    cases = [((str(run_a), str(run_a)), "compare two different runs"),
             ((str(run_a), str(tmp_path / "empty")), "holds no test predictions"),
             ((str(run_a), str(other)), "were tested on different test sets (36 and 3 test samples)"),
             ((str(run_a), str(shuffled)), "were tested on different test sets (sample 1 is 0"),
             ((str(run_a),), "pass two folders")]
    for args, fragment in cases:
        result = cli_in_process("src.compare", *args)
        assert result.returncode == 2, result.output
        assert "Traceback" not in result.output
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert fragment in line, line
