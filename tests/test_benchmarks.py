"""The benchmarks' own logic: `make precision-check`'s verdict and the run it trains."""

import os
import sys

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from precision_check import q1_quick, verdict  # noqa: E402


def _runs(f32, bf16):
    return ([{"precision": "float32", "test_accuracy": a} for a in f32]
            + [{"precision": "mixed_bfloat16", "test_accuracy": a} for a in bf16])


def test_precision_check_passes_within_two_standard_deviations_of_float32_and_fails_beyond():
    stats, same = verdict(_runs([0.40, 0.42, 0.44], [0.38, 0.39, 0.40]))  # float32: mean 0.42, std 0.02
    assert same and abs(stats["float32"]["std"] - 0.02) < 1e-9 and stats["mixed_bfloat16"]["runs"] == 3
    assert verdict(_runs([0.40, 0.42, 0.44], [0.45, 0.46]))[1]  # 0.035 above: within 2 std either way
    assert not verdict(_runs([0.40, 0.42, 0.44], [0.47, 0.47]))[1]  # 0.05 above
    assert not verdict(_runs([0.40, 0.42, 0.44], [0.36, 0.37]))[1]  # 0.055 below
    assert verdict(_runs([0.40, 0.42, 0.44], [0.38]))[1] is None  # a failed run leaves no spread to compare
    assert verdict(_runs([0.40, 0.42], [0.30, None, 0.31]))[1] is False  # a failed run is left out


def test_precision_check_trains_the_q1_run_of_the_quick_profile():
    key, parameters = q1_quick()
    assert key == "q1/cifar10-resnet20-adam"
    assert parameters["depth"] == 20 and parameters["optimizer"] == "adam" and parameters["epochs"] <= 5
    assert parameters["per_class"] and parameters["test_per_class"]  # a subset of the real data, not all of it
