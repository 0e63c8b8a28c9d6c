"""What `make results` computes from `results/` (`summary/reference.py`): figures over seeds and the precision rule
of docs/performance.md."""

import pandas as pd

from resnet_keras.summary.reference import precision_summary, precision_verdict


def _entry(precision, seed, test, val):
    """A reference entry: `val` the validation accuracies of its epochs (fractions), `test` its test accuracy."""
    return {"settings": {"seed": seed}, "provenance": {"precision": precision},
            "results": {"test_accuracy": test, "epochs_trained": len(val), "best_val_accuracy": max(val),
                        "final_val_accuracy": val[-1]},
            "history": pd.DataFrame({"epoch": range(1, len(val) + 1), "val_accuracy": val})}


def _refs(bf16, fp32):
    """Q1's runs in mixed bfloat16 and the precision study's in float32: per seed (test, last five validations)."""
    return {"q1": {f"r-seed{s}": _entry("mixed_bfloat16", s, t, v) for s, (t, v) in enumerate(bf16)},
            "precision": {f"r-float32-seed{s}": _entry("float32", s, t, v) for s, (t, v) in enumerate(fp32)}}


FP32 = [(0.830, [0.83] * 5), (0.826, [0.82] * 5), (0.834, [0.84] * 5)]  # test 83.0 +- 0.4; last five 83.0 +- 1.0


def test_bfloat16_holds_within_the_larger_of_the_pooled_deviation_and_half_a_point():
    # test accuracy 0.55 points lower: beyond 0.5 but within the pooled deviation (0.40); last five 0.6 lower,
    # within their pooled 1.0
    bf16 = [(0.8245, [0.824] * 5), (0.8205, [0.814] * 5), (0.8285, [0.834] * 5)]
    text = "\n".join(precision_verdict(_refs(bf16, FP32)))
    assert "test accuracy: mixed bfloat16 - float32 = -0.55 points; allowed -0.50" in text  # pooled 0.40 < 0.5
    assert "Verdict: mixed bfloat16 fails" in text
    bf16 = [(0.8255, [0.824] * 5), (0.8215, [0.814] * 5), (0.8295, [0.834] * 5)]  # 0.45 lower: within 0.5
    text = "\n".join(precision_verdict(_refs(bf16, FP32)))
    assert "= -0.45 points; allowed -0.50 (pooled standard deviation 0.40): holds" in text
    assert "mean of the last 5 validation accuracies: mixed bfloat16 - float32 = -0.60 points; allowed -1.00" in text
    assert "Verdict: mixed bfloat16 holds" in text


def test_no_verdict_before_three_seeds_of_each_precision():
    text = "\n".join(precision_verdict(_refs(FP32, FP32[:2])))
    assert "No verdict yet" in text and "Verdict" not in text.replace("No verdict yet", "")
    assert "| float32 | seeds 0, 1 | 82.80 +- 0.28% (n = 2) | 82.50 +- 0.71% (n = 2) |" in text
    assert precision_verdict({}) == []


def test_what_the_results_show_says_where_the_precision_rule_stands():
    line = precision_summary(_refs(FP32[:1], FP32[:2]))
    assert line == ("- **Precision** (Q1's recipe), test accuracy: float32 (the precision study, 2 seeds) 82.80 +- "
                    "0.28% (n = 2), the last five validation accuracies averaging 82.50 +- 0.71% (n = 2); mixed "
                    "bfloat16 (Q1's own runs, 1 seed) 83.00%, the last five validation accuracies averaging 83.00%. "
                    "Not a verdict yet: the rule of docs/performance.md decides once each precision has 3 seeds "
                    "(results/README.md).")
    bf16 = [(0.8245, [0.824] * 5), (0.8205, [0.814] * 5), (0.8285, [0.834] * 5)]  # fails: as above
    assert precision_summary(_refs(bf16, FP32)).endswith("The rule of docs/performance.md: mixed bfloat16 fails: "
                                                         "`precision: auto` should go back to float32 on CPUs.")
    assert precision_summary(_refs([], FP32)) is None  # one precision alone is no comparison
