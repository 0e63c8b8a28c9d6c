"""The sweep's summary: results table, index and the cross-run comparisons of the study."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from resnet_keras.report import paper_error
from resnet_keras.summary.index import write_summary
from resnet_keras.sweep.params import COMPARISONS, Run


def fake_run(outputs, question, name, results, compare, accuracies=(0.5, 0.6)):
    """A finished run on disk: its history.csv, and the sweep's record of it."""
    folder = os.path.join(outputs, question, name)
    os.makedirs(folder)
    pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.5], "accuracy": list(accuracies),
                  "val_loss": [2.1, 1.7], "val_accuracy": [a - 0.05 for a in accuracies], "time_s": [9.0, 4.0]}
                 ).to_csv(os.path.join(folder, "history.csv"), index=False)
    settings = {"dataset": "cifar10", "shortcut": "zero_pad"}
    settings.update((k, results.pop(k)) for k in ("family", "depth") if k in results)  # the notebook's parameters
    run = Run(question, name, "notebooks/study.py", {}, "params/x.yaml", compare, settings)
    record = {"status": "ok", "results": {"epochs_trained": 2, **results}}
    return run, record


def test_paper_table_puts_measured_error_next_to_the_papers(tmp_path):
    outputs = str(tmp_path)
    compare = ("paper_table", "plain_vs_residual")
    runs, records = [], {}
    for name, family, depth, accuracy in (("resnet-20", "resnet", 20, 0.9120), ("resnet-56", "resnet", 56, 0.93),
                                          ("plain-20", "plain", 20, 0.90), ("resnet-26", "resnet", 26, 0.91)):
        run, rec = fake_run(outputs, "paper", name, {"family": family, "depth": depth, "params": 1000 * depth,
                                                      "model": name, "test_accuracy": accuracy}, compare)
        runs.append(run)
        records[run.key] = rec
    index = write_summary(outputs, runs, records)
    table = pd.read_csv(tmp_path / "paper" / "paper_table.csv").set_index("network")
    assert list(table.index) == ["ResNet-20", "ResNet-26", "ResNet-56", "plain-20"]
    assert table.loc["ResNet-20", "test error (%)"] == pytest.approx(8.80)
    assert table.loc["ResNet-20", "paper (%)"] == 8.75 and table.loc["ResNet-56", "paper (%)"] == 6.97
    assert table.loc["ResNet-20", "difference (points)"] == pytest.approx(0.05)
    assert pd.isna(table.loc["plain-20", "paper (%)"]) and pd.isna(table.loc["ResNet-26", "paper (%)"])
    html = open(index).read()
    for figure in ("error_vs_depth.png", "plain_vs_residual.png", "comparison.png"):
        assert (tmp_path / "paper" / figure).stat().st_size > 1000
        assert f'src="paper/{figure}"' in html
    assert "Against the ResNet paper" in html and "<td>8.75</td>" in html


def test_paper_table_aggregates_each_network_over_its_seeds(tmp_path):
    outputs = str(tmp_path)
    runs, records = [], {}
    for name, family, depth, seed, accuracy in (
            ("resnet-20-seed0", "resnet", 20, 0, 0.920), ("resnet-20-seed1", "resnet", 20, 1, 0.910),
            ("resnet-20-seed2", "resnet", 20, 2, 0.900), ("plain-20-seed0", "plain", 20, 0, 0.885),
            ("plain-20-seed1", "plain", 20, 1, 0.905)):
        run, rec = fake_run(outputs, "paper", name, {"family": family, "depth": depth, "params": 270_000,
                                                      "model": name, "test_accuracy": accuracy, "seed": seed},
                            ("paper_table", "plain_vs_residual"))
        runs.append(run)
        records[run.key] = rec
    html = open(write_summary(outputs, runs, records)).read()
    table = pd.read_csv(tmp_path / "paper" / "paper_table.csv").set_index("network")
    assert list(table.index) == ["ResNet-20", "plain-20"]
    resnet, plain = table.loc["ResNet-20"], table.loc["plain-20"]
    assert resnet["seeds"] == 3 and plain["seeds"] == 2
    # Errors 8.0, 9.0 and 10.0: mean 9.0, sample std 1.0, best 8.0; the paper's 8.75.
    assert (resnet["test error (%)"], resnet["std (points)"], resnet["best (%)"]) == pytest.approx((9.0, 1.0, 8.0))
    assert resnet["difference (points)"] == pytest.approx(0.25)
    assert (plain["test error (%)"], plain["std (points)"], plain["best (%)"]) == pytest.approx((10.5, 1.41, 9.5))
    assert resnet["runs"] == "resnet-20-seed0;resnet-20-seed1;resnet-20-seed2"
    for seed in range(3):  # the index links every seed's report
        assert f'href="paper/resnet-20-seed{seed}/report.html"' in html
    assert (tmp_path / "paper" / "error_vs_depth.png").stat().st_size > 1000


def test_accuracy_against_time_leaves_out_the_compiling_first_epoch(tmp_path, monkeypatch):
    import keras

    from resnet_keras import plots
    from resnet_keras.report import run_summary

    history = pd.DataFrame({"loss": [2.0, 1.5, 1.2], "accuracy": [0.5, 0.6, 0.7], "time_s": [60.0, 4.0, 5.0]})
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="resnet18")
    summary = run_summary(history, {"accuracy": 0.8, "loss": 0.5}, model)
    assert summary["epoch_time_s"] == 4.5 and summary["train_time_s"] == 69.0  # median of epochs 2 and 3
    plotted = []
    monkeypatch.setattr(plots, "plot_accuracy_vs_time", lambda points: plotted.append(points) or
                        plots.plt.figure())
    outputs = str(tmp_path)
    run, rec = fake_run(outputs, "arch", "imagenet-18", summary, ("accuracy_vs_time",))
    html = open(write_summary(outputs, [run], {run.key: rec})).read()
    assert plotted == [{"resnet18": (4.5, 0.8, 8)}]  # (time per epoch, test accuracy, parameters)
    assert (tmp_path / "arch" / "accuracy_vs_time.png").is_file() and "Accuracy against training time" in html


def test_comparisons_skip_questions_without_matching_runs(tmp_path):
    outputs = str(tmp_path)
    run, rec = fake_run(outputs, "q", "x", {"model": "m", "params": 5, "test_accuracy": 0.5}, tuple(COMPARISONS))
    write_summary(outputs, [run], {run.key: rec})
    assert sorted(os.listdir(tmp_path / "q")) == ["comparison.png", "x"]


def test_failed_runs_stay_out_of_the_comparisons(tmp_path):
    outputs = str(tmp_path)
    run, _ = fake_run(outputs, "paper", "resnet-20", {}, ("paper_table",))
    html = open(write_summary(outputs, [run], {run.key: {"status": "failed", "error": "Boom"}})).read()
    assert "Boom" in html and not (tmp_path / "paper" / "paper_table.csv").exists()


def test_paper_error_only_for_the_papers_networks():
    assert paper_error("cifar10", "resnet", 110) == 6.43
    assert paper_error("cifar10", "resnet", 110, "projection") is None
    assert paper_error("cifar100", "resnet", 20) is None and paper_error("cifar10", "plain", 20) is None


def test_run_results_are_plain_json(tmp_path):
    import resnet_keras as rk
    from resnet_keras.report import run_summary, write_run_results

    model = rk.build_resnet(8)
    history = pd.DataFrame({"epoch": [1, 2, 3], "accuracy": [0.2, 0.3, 0.4], "val_accuracy": [0.2, 0.25, 0.3],
                            "time_s": [10.0, 2.0, 4.0]})
    write_run_results(str(tmp_path), run_summary(history, {"accuracy": 0.3, "loss": 1.9}, model,
                                                 class_names=["a", "b"]))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["epoch_time_s"] == 3.0  # median of the epochs after the first
    assert results["train_val_gap"] == pytest.approx(0.1) and results["class_names"] == ["a", "b"]


def test_finish_writes_every_product_of_the_notebook_and_the_results_last(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import resnet_keras as rk
    from resnet_keras import products
    from resnet_keras.errors import ConfigError
    from resnet_keras.report import finish

    model = rk.build_resnet(8)
    history = pd.DataFrame({"epoch": [1, 2], "accuracy": [0.2, 0.3], "time_s": [10.0, 2.0]})
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="figure='loss' is not accepted; use one of 'curves', 'confusion'"):
        finish(str(out), model, history, {"accuracy": 0.3, "loss": 1.9}, {"curves": plt.figure(), "loss": None})
    assert not out.exists()  # refused before anything was written
    summary = finish(str(out), model, history, {"accuracy": 0.3, "loss": 1.9}, {"curves": plt.figure()},
                     dataset="cifar10", class_names=["a", "b"])
    for name in products.FROM_NOTEBOOK:
        assert (out / name).stat().st_size > 0, name
    assert not (out / products.CONFUSION).exists()
    assert pd.read_csv(out / products.HISTORY)["accuracy"].tolist() == [0.2, 0.3]
    results = json.loads((out / products.RESULTS).read_text())
    assert results["dataset"] == "cifar10" and results["test_accuracy"] == summary["test_accuracy"] == 0.3
    assert (out / products.RESULTS).stat().st_mtime_ns >= (out / products.MODEL).stat().st_mtime_ns
    assert rk.load_h5(str(out / products.MODEL)).count_params() == model.count_params()


def test_finish_writes_one_test_image_per_class_met_first_as_examples(tmp_path):
    from PIL import Image

    import resnet_keras as rk
    from resnet_keras import products
    from resnet_keras.report import finish

    x = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    y = np.array([2, 2, 0, 1, 0, 2], dtype=np.int32)
    data = rk.data.CifarData(x, y, x[:0], y[:0], x, y, ["cat", "ship", "maple tree"])
    history = pd.DataFrame({"epoch": [1], "accuracy": [0.2], "time_s": [10.0]})
    out = tmp_path / "run"
    (out / products.EXAMPLES).mkdir(parents=True)
    (out / products.EXAMPLES / "0-old.png").write_bytes(b"stale")
    finish(str(out), rk.build_resnet(8, 3), history, {"accuracy": 0.3, "loss": 1.9}, data=data)
    examples = sorted(os.listdir(out / products.EXAMPLES))
    assert examples == ["00-maple_tree.png", "01-cat.png", "02-ship.png"]
    assert [name for _, name in rk.report.read_examples(str(out / products.EXAMPLES))] == ["maple_tree", "cat", "ship"]
    for name, i in zip(examples, (0, 2, 3)):  # the first image of each class, in test-set order
        np.testing.assert_array_equal(np.asarray(Image.open(out / products.EXAMPLES / name)), x[i])
    assert json.loads((out / products.RESULTS).read_text())["class_names"] == ["cat", "ship", "maple tree"]


def test_index_lists_runs_not_run_yet_beside_finished_ones(tmp_path):
    outputs = str(tmp_path)
    run, rec = fake_run(outputs, "q", "done", {"model": "m", "params": 5, "depth": 20, "test_accuracy": 0.5}, ())
    waiting = Run("q", "waiting", "notebooks/study.py", {}, "params/x.yaml")
    html = open(write_summary(outputs, [run, waiting], {run.key: rec})).read()
    assert "<td>waiting</td>" in html and "not run" in html
    assert pd.read_csv(tmp_path / "results.csv").set_index("run").loc["waiting", "status"] == "not run"


def test_summary_is_drawn_again_only_when_something_it_shows_changed(tmp_path):
    outputs = str(tmp_path)
    run, rec = fake_run(outputs, "paper", "resnet-20", {"family": "resnet", "depth": 20, "params": 1,
                                                       "model": "r20", "test_accuracy": 0.9}, ("paper_table",))
    index = write_summary(outputs, [run], {run.key: rec})
    figure = tmp_path / "paper" / "error_vs_depth.png"
    drawn = os.stat(index).st_mtime_ns, figure.stat().st_mtime_ns
    write_summary(outputs, [run], {run.key: rec})
    assert (os.stat(index).st_mtime_ns, figure.stat().st_mtime_ns) == drawn  # nothing changed: nothing redrawn
    rec["results"]["test_accuracy"] = 0.8
    write_summary(outputs, [run], {run.key: rec})
    assert "<td>20.0</td>" in open(index).read() and figure.stat().st_mtime_ns != drawn[1]
    figure.unlink()  # a figure of the page is gone: the page is drawn again
    write_summary(outputs, [run], {run.key: rec})
    assert figure.stat().st_size > 1000


def test_transfer_resumed_in_fine_tuning_says_so_and_times_its_two_stages_apart(tiny_data, tmp_path):
    """A Q3 run interrupted during fine-tuning resumes there and marks the epoch it resumed after, counted over
    both stages; its summary times head epochs and fine-tuning epochs apart, and a replay leaves the model as the
    run did (its top unfrozen). Bookkeeping: what it trains with (`train`, `cache_features`, `unfreeze_top`) is
    tested on every backend in test_training and test_models, so this runs on the default backend only."""
    import resnet_keras as rk
    from resnet_keras import report

    data, out = rk.load_dataset("cifar10", tiny_data, validation_split=0.2), str(tmp_path / "run")
    source = str(tmp_path / "source.h5")
    rk.save_h5(rk.build_resnet(8, 100), source)

    def run(fine_tune_epochs, replay=False):
        rk.set_seed(0)
        model = rk.build_transfer_model(10, weights=source, head_units=8)
        history = rk.train_transfer(model, data, out, epochs=2, batch_size=16, cache_features=True,
                                    fine_tune_epochs=fine_tune_epochs, fine_tune_fraction=0.5, replay=replay)
        return model, history

    assert run(1)[1].attrs == {"resumed_after": 0, "head_epochs": 2}  # as if killed after fine-tuning's epoch 1
    model, history = run(2)
    assert history.attrs == {"resumed_after": 3, "head_epochs": 2} and list(history["epoch"]) == [1, 2, 3, 4]
    assert "| resumed here: epochs 1-3 were trained by an earlier attempt" in report.training_log(history)
    val = 100 * history["val_accuracy"]
    assert (f"With the base frozen, the head reached {val[1]:.2f}% validation accuracy in its 2 epochs; 2 epochs "
            f"of fine-tuning changed that by "
            f"{val[3] - val[1]:+.2f} points.") in report.findings(history, {"accuracy": 0.5, "loss": 1.0})
    test = rk.evaluate(model, data.x_test, data.y_test)
    summary = report.run_summary(history, test, model)
    assert summary["epoch_time_s"] == round(float(history["time_s"].iloc[1]), 2)  # the head's epoch 2
    assert summary["fine_tune_epoch_time_s"] == round(float(history["time_s"].iloc[3]), 2)  # fine-tuning's
    assert "| time per epoch of fine-tuning (median of its epochs 2 onward) |" in report.figures_table(summary)
    from resnet_keras import plots

    for fig in (plots.plot_history(history), plots.plot_overlay({"run": history}, stage=2)):  # fine-tuning marked
        assert all([2.5, 2.5] in [list(line.get_xdata()) for line in ax.lines] for ax in fig.axes[:2]), fig
    assert not any(len(ax.lines) > 2 for ax in plots.plot_history(history.iloc[:2]).axes)  # the head alone: no mark
    report.finish(out, model, history, test)  # the joined history and the model, as the notebook writes them
    replayed, again = run(2, replay=True)
    assert again.attrs["head_epochs"] == 2 and rk.count_params(replayed) == rk.count_params(model)
