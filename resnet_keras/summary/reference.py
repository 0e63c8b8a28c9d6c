"""Reference results: the small products of full-length runs, committed in `results/`, and what is drawn from them.

    make reference    # python -m resnet_keras.summary.reference collect: finished full-length runs -> results/
    make results      # python -m resnet_keras.summary.reference draw: results/ -> its tables, figures, the README's
    make reports      # python -m resnet_keras.summary.reference redraw: the committed reports, with today's notebooks
    python -m resnet_keras.summary.reference predict   # predictions.npy for committed models without

A run is a reference when it finished under the sweep with exactly the
parameters of its run in the `full` profile's plan. Its folder keeps what is
small and enough to redraw every comparison:

    results/<question>/<run>/history.csv   one row per epoch (the run's own file)
    results/<question>/<run>/run.json      {"settings": every parameter, "results": results.json's figures,
                                            "provenance": device, CPU flags, backend, precision, commit,
                                            finished, host, wall time (of the last
                                            attempt: `resumed_after` says how many
                                            epochs an earlier one trained)}

The assignment's runs (Q1, Q2, Q3) and the precision study's keep what a
grader reads and the demo serves, too: `report.html`, `curves.png`,
`confusion.png`, `examples/` and `model.h5` (without optimizer state; for
seeds other than 0 only while `results/` is under `MODELS_UP_TO_MB`) with
`predictions.npy`, the model's class for each test image, against which the
reproduction test checks it (`predict` makes them for a committed model
without, checking that they count its recorded accuracy).

`draw` writes, from that folder alone, `results/README.md` (per question: one
row per network over its seeds, mean +- std and best, beside the paper's
figure where it has one, and where each came from), the paper's table
(`results/paper/paper_table.csv`), error against depth and the paper's figure
6 (`results/paper/*.png`), and the block between the README's
`<!-- reference-results -->` markers. Networks of the plan with no reference
yet are listed as such. The sweep's index draws a user's runs over the
reference curves of the same network and recipe (`index.py`).
"""

import argparse
import glob
import os
import shutil
import sys

from resnet_keras import products, report
from resnet_keras.catalog import DATASETS
from resnet_keras.errors import ConfigError
from resnet_keras.files import atomic_path, read_json_object, write_json, write_text
from resnet_keras.summary import comparisons
from resnet_keras.sweep.params import plan, recipe  # noqa: F401 (recipe: part of this module's interface)

RUN_FILE = products.REFERENCE
DELIVERED = ("q1", "q2")  # the assignment from scratch: one table of configurations over seeds
TRANSFER = "q3"  # the assignment's transfer learning: its own table, and a figure against training from scratch
PRECISION = "precision"  # the precision study: Q1's recipe in float32 (params/study_precision.yaml)
SEEDS = 3  # seeds per configuration that the precision rule needs (docs/performance.md)
# The assignment's original write-up states this of Q1 (ResNet-20, Adam, 20 epochs): shown beside our run.
Q1_STATED = "about 80% validation accuracy after 20 epochs"
Q3_NOTE = ("Q3 with a ResNet-50 pretrained on ImageNet has no reference here: its base needs the ImageNet weights "
           "of `keras.applications`, which this project's machines cannot download (no internet; the sweep lists "
           "its runs as blocked, with the fix). Where they can be fetched, `make sweep ONLY=q3_transfer` runs it, "
           "and `make reference` adds it. Without them, `params/q3_own_base.yaml` runs the same head on this "
           "suite's own ResNet-44 trained on the other CIFAR.")
# Every seed keeps its model while results/ is smaller than this; past it, seed 0's only (the reproduction test
# checks every committed model, so each costs the test suite time too).
MODELS_UP_TO_MB = 60
KEPT = (products.REPORT, products.CURVES, products.CONFUSION)  # copied as they are; the model is slimmed
BEGIN, END = "<!-- reference-results -->", "<!-- /reference-results -->"
PAPER = "paper"  # the paper's CIFAR-10 table (params/study_paper.yaml)
# akamaster/pytorch_resnet_cifar10, README table, "Test err(this impl.)": CIFAR-10 test error (%) of its released
# option-A ResNets, one run each (its trainer.py: 200 epochs on all 50k images, x0.1 at epochs 100 and 150).
AKAMASTER_CIFAR10_ERROR = {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61, 110: 6.32}
# The bar this project holds its paper runs to (docs/reproduction.md): the mean test error within this many points
# of the paper's figure.
PAPER_BAR = 0.3


def collect(outputs="outputs", results="results", params_dir="params", profile="full"):
    """Copy every finished run of `outputs` whose parameters are its plan's (`profile`) into `results`.

    Returns the keys copied. A run already in `results` is replaced by the
    newer one only when that finished later: collecting the same run again
    leaves it (and a report redrawn since) as it is.
    """
    copied = []
    for run in plan(params_dir, profile):
        folder = os.path.join(outputs, run.question, run.name)
        record = read_json_object(os.path.join(folder, products.RECORD))
        if record.get("status") != "ok" or record.get("parameters") != run.parameters:
            continue
        results_ = record["results"]
        entry = {"settings": record["settings"], "results": results_,
                 "provenance": {"device": results_.get("device"), "cpu_flags": results_.get("cpu_flags"),
                                "backend": results_.get("backend"),
                                "precision": results_.get("precision"), "commit": record.get("commit"),
                                "finished": record.get("finished"), "host": record.get("host"),
                                "profile": profile, "elapsed_s": record.get("elapsed_s"),
                                **{k: record[k] for k in ("resumed_after",) if k in record}}}
        target = os.path.join(results, run.question, run.name)
        known = read_json_object(os.path.join(target, RUN_FILE))
        if known and (known["provenance"].get("finished") or "") >= (record.get("finished") or ""):
            continue  # the same run again (its committed report may be redrawn since), or an older one
        os.makedirs(target, exist_ok=True)
        with atomic_path(os.path.join(target, products.HISTORY)) as tmp:
            shutil.copyfile(os.path.join(folder, products.HISTORY), tmp)
        if run.question in (*DELIVERED, TRANSFER, PRECISION):  # what a grader reads and the demo serves
            _deliver(folder, target, entry,
                     model=run.settings.get("seed", 0) == 0 or _size_mb(results) < MODELS_UP_TO_MB)
        write_json(os.path.join(target, RUN_FILE), entry)  # last: the entry is complete once it exists
        copied.append(run.key)
    return copied


def _deliver(folder, target, entry, model=True):
    """Copy a run's report, figures, examples and, with `model`, its model (without optimizer state) and its
    test predictions from `folder` to `target` (predictions made here where the run, from before they were
    saved, has none: `record_predictions`)."""
    for name in KEPT:
        if os.path.isfile(os.path.join(folder, name)):
            with atomic_path(os.path.join(target, name)) as tmp:
                shutil.copyfile(os.path.join(folder, name), tmp)
    if model:
        with atomic_path(os.path.join(target, products.MODEL)) as tmp:
            slim_h5(os.path.join(folder, products.MODEL), tmp)
        if os.path.isfile(os.path.join(folder, products.PREDICTIONS)):
            with atomic_path(os.path.join(target, products.PREDICTIONS)) as tmp:
                shutil.copyfile(os.path.join(folder, products.PREDICTIONS), tmp)
        else:
            record_predictions(target, entry)
    examples = os.path.join(target, products.EXAMPLES)
    shutil.rmtree(examples, ignore_errors=True)
    if os.path.isdir(os.path.join(folder, products.EXAMPLES)):
        shutil.copytree(os.path.join(folder, products.EXAMPLES), examples)


def flips(precision):
    """How many of a model's test predictions may change when it is evaluated again elsewhere: another backend or
    CPU sums in another order, which flips an image whose two best classes tie to rounding. Two in float32; ten
    in mixed precision, which rounds every activation to a 16-bit float: bfloat16 keeps 8 bits of mantissa (the
    Q1 model, trained on the torch backend in mixed bfloat16, scored 8008 of 10,000 there, 8007 on TensorFlow and
    8005 on JAX, 2026-12-06), float16 11 (a ResNet-56 trained on a GPU in mixed float16 erred on 7.46% there, on
    7.50% on TensorFlow and 7.45% on JAX on a CPU, 2026-11-24, docs/reproduction.md)."""
    return 10 if "float16" in (precision or "") else 2


def record_predictions(folder, entry):
    """Write `predictions.npy` into a committed run's `folder` (its model on the test set, on this machine) after
    checking that they count the test accuracy its run recorded, to within `flips`; return them.

    For runs that finished before their notebook saved its predictions; the
    reproduction test (`tests/test_results.py`) checks the model against them.
    """
    import numpy as np

    import resnet_keras as rk
    from resnet_keras.files import save_predictions

    s, recorded = entry["settings"], entry["results"]
    data = rk.load_dataset(s.get("dataset", "cifar10"), s.get("data_dir"), label_mode=s.get("label_mode", "fine"),
                           test_per_class=s.get("test_per_class"))
    predictions = rk.evaluate(rk.load_h5(os.path.join(folder, products.MODEL)), data.x_test, data.y_test)["predictions"]
    right, expected = int(np.sum(predictions == data.y_test)), round(recorded["test_accuracy"] * len(data.y_test))
    tolerance = flips(recorded.get("precision"))
    if abs(right - expected) > tolerance:
        raise ConfigError(f"{folder}: its model classifies {right} of {len(data.y_test)} test images right here, "
                          f"its run recorded {expected}; more than {tolerance} apart, so its predictions are not "
                          f"recorded")
    save_predictions(os.path.join(folder, products.PREDICTIONS), predictions)
    return predictions


def predict(results="results", only=None):
    """`record_predictions` for each committed run with a model and no predictions (or those of `only`, run keys);
    return the keys recorded."""
    done = []
    for question, entries in load(results).items():
        for name, entry in entries.items():
            key, folder = f"{question}/{name}", os.path.join(results, question, name)
            if (not only or key in only) and os.path.isfile(os.path.join(folder, products.MODEL)) \
                    and not os.path.isfile(os.path.join(folder, products.PREDICTIONS)):
                record_predictions(folder, entry)
                done.append(key)
    return done


def _size_mb(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files) / 2 ** 20


def redraw(results="results", params_dir="params", profile="full", only=None, log=print):
    """Redraw committed runs' reports with today's notebooks, without training; return the keys redrawn.

    Each run's notebook executes on a copy of its folder with `replay=True`
    (`train` then takes the weights of its `model.h5` and its `history.csv`)
    and the precision it trained in; the new `report.html`, figures and
    `examples/` replace the committed ones. The model, the history and
    `run.json`, the run's own record, stay as they are. The test set is
    evaluated again, on this machine: a model that computes in bfloat16 may
    flip a few of the 10,000 test images against the figure its run recorded
    (`tests/test_results.py`).

    Args:
        only: run keys (`question/run`) to redraw; default: every committed run with a model.
    """
    import tempfile

    import jupytext
    import papermill

    from resnet_keras.sweep.export import export_report

    planned = {run.key: run for run in plan(params_dir, profile)}
    done = []
    for question, entries in load(results).items():
        for name in entries:
            key, folder = f"{question}/{name}", os.path.join(results, question, name)
            if (only and key not in only) or not os.path.isfile(os.path.join(folder, products.MODEL)):
                continue
            if key not in planned:
                raise ConfigError(f"{key} is committed but not in the {profile!r} plan of {params_dir}/; "
                                  f"it cannot be redrawn with a notebook")
            run, entry = planned[key], entries[name]
            with tempfile.TemporaryDirectory(prefix="redraw-") as tmp:
                for product in (products.MODEL, products.BEST_MODEL, products.HISTORY, RUN_FILE):
                    if os.path.isfile(os.path.join(folder, product)):
                        shutil.copyfile(os.path.join(folder, product), os.path.join(tmp, product))
                parameters = {**run.parameters, "out_dir": tmp, "replay": True,
                              "precision": entry["provenance"].get("precision") or run.parameters.get("precision")}
                executed = os.path.join(tmp, products.NOTEBOOK)
                papermill.execute_notebook(jupytext.read(run.notebook), executed, parameters=parameters,
                                           kernel_name="python3", progress_bar=False, cwd=os.path.abspath("."),
                                           extra_arguments=["--IPKernelApp.capture_fd_output=False"])
                export_report(executed, os.path.join(tmp, products.REPORT), key)
                for product in KEPT:
                    if os.path.isfile(os.path.join(tmp, product)):
                        with atomic_path(os.path.join(folder, product)) as out:
                            shutil.copyfile(os.path.join(tmp, product), out)
                examples = os.path.join(folder, products.EXAMPLES)
                shutil.rmtree(examples, ignore_errors=True)
                shutil.copytree(os.path.join(tmp, products.EXAMPLES), examples)
            log(f"reference: redrew {key}")
            done.append(key)
    return done


def slim_h5(source, target):
    """Copy a Keras `.h5` model without its optimizer state and training configuration: what inference needs."""
    import h5py

    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        for key, value in src.attrs.items():
            if key != "training_config":
                dst.attrs[key] = value
        for name in src:
            if name != "optimizer_weights":
                src.copy(src[name], dst, name)


def load(results="results"):
    """{question: {run: {"settings", "results", "provenance", "history": DataFrame}}} of `results`."""
    import pandas as pd

    found = {}
    for path in sorted(glob.glob(os.path.join(results, "*", "*", RUN_FILE))):
        folder = os.path.dirname(path)
        entry = read_json_object(path)
        if not entry:
            continue
        entry["history"] = pd.read_csv(os.path.join(folder, products.HISTORY))
        found.setdefault(os.path.basename(os.path.dirname(folder)), {})[os.path.basename(folder)] = entry
    return found


def draw(results="results", readme="README.md", params_dir="params", profile="full"):
    """Draw `results/README.md`, the paper's table and figures, and the README's block; return the block."""
    from resnet_keras import plots

    refs = load(results)
    planned = {}
    for run in plan(params_dir, profile):
        planned.setdefault(run.question, []).append(run)
    for dataset in _datasets(refs, "q2"):
        curves = {}  # a configuration's seeds together, per precision
        for e in refs["q2"].values():
            if e["settings"].get("dataset") == dataset:
                label = f"{_q2_label(e)}, {e['provenance'].get('precision')}"
                curves.setdefault(label, []).append(e["history"])
        fig = plots.plot_overlay(curves, "val_accuracy",
                                 f"Q2 on {report.DATASET_NAMES.get(dataset, dataset)}: validation accuracy per epoch")
        plots.save_figure(fig, os.path.join(results, "q2", f"val_accuracy_{dataset}.png"))
    _draw_transfer(refs, results)
    for question, done in refs.items():
        if question == PAPER:
            facts = _facts(done)
            histories = {name: e["history"] for name, e in done.items()}
            comparisons.paper_table(results, question, facts, histories)
            comparisons.plain_vs_residual(results, question, facts, histories)
    plots.plt.close("all")
    note = ("Drawn by `make results` from the runs in this folder (`resnet_keras/summary/reference.py`); do not edit "
            "by hand.")
    write_text(os.path.join(results, "README.md"),
               f"# Reference results\n\n{note}\n\n" + _block(planned, refs, "", everything=True))
    block = _block(planned, refs, os.path.relpath(results, os.path.dirname(os.path.abspath(readme or "."))) + "/")
    print("\n".join(precision_verdict(refs)))
    if readme and os.path.isfile(readme):
        with open(readme, encoding="utf-8") as f:
            text = f.read()
        if BEGIN not in text or END not in text:
            raise ConfigError(f"{readme} has no {BEGIN} ... {END} block; add the two markers where the results go")
        head, rest = text.split(BEGIN, 1)
        write_text(readme, head + BEGIN + "\n" + block + END + rest.split(END, 1)[1])
    return block


def _block(planned, refs, prefix, everything=False):
    """Markdown: the assignment, then the paper's table (every network, run or not), then each study with references,
    its table and figures;
    with `everything` (results/README.md), also every seed's figures, the precision verdict and one table of the
    networks that have no reference yet."""
    lines, waiting = _assignment(planned, refs, prefix), []
    if everything:
        lines += _seed_table(refs, prefix) + precision_verdict(refs)
    for question in sorted(planned, key=lambda q: q != PAPER):
        runs, done = planned[question], refs.get(question, {})
        if question == PAPER:  # its table lists every network of the plan, run or not
            lines += _paper(runs, done, prefix)
            continue
        facts = _facts(done)
        missing = list(dict.fromkeys(_network(run.name, run.settings) for run in runs if run.name not in done))
        if missing and question not in DELIVERED and (question != TRANSFER or not done):  # listed in their table
            waiting.append(f"| {question} | {len(done)} of {len(runs)} | {', '.join(missing)} |")
        if not facts or question in (*DELIVERED, TRANSFER, PRECISION):
            continue
        lines += [f"**{question}** ({len(done)} of {len(runs)} runs at full length)", "", _table(facts, done), ""]
    if waiting and everything:
        lines += ["Not yet at full length:", "", "| study | runs at full length | networks without a reference |",
                  "|---|---|---|", *waiting]
    return "\n".join(lines).strip() + "\n"


def _assignment(planned, refs, prefix):
    """Markdown lines: the assignment's configurations (Q1, then Q2 by data set) in plan order, each over its seeds
    (and per precision, where seeds trained in several), with the machines they trained on and their reports; Q1
    beside the original write-up's figure; Q2's curves; Q3's note."""
    configs = _configurations([run for question in DELIVERED for run in planned.get(question, [])])
    if not configs:
        return []
    rows = ["| question | data set | network | optimizer | batch | precision | seeds | test accuracy (last epoch) "
            "| test accuracy of the best-validation model | best validation accuracy | validation accuracy, mean of "
            "the last 5 epochs | time per epoch | reports |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    hosts = {}
    for (question, _), runs in sorted(configs.items(), key=lambda c: (c[0][0], c[1][0].settings.get("dataset"))):
        s = runs[0].settings
        dataset = report.DATASET_NAMES.get(s.get("dataset"), s.get("dataset"))
        optimizer = report.OPTIMIZER_NAMES.get(s.get("optimizer"), s.get("optimizer"))
        head = f"| {question.upper()} | {dataset} | ResNet-{s.get('depth')} | {optimizer} | {s.get('batch_size')} |"
        groups = _by_precision(refs.get(question, {}), [run.name for run in runs])
        if not groups:
            rows.append(f"{head} | 0 of {len(runs)} | not yet at full length | | | | | |")
        for precision, entries in groups.items():
            marks = "".join(dict.fromkeys(hosts.setdefault(_host(e), "*" * (len(hosts) + 1))
                                          for e in entries.values()))
            f = _figures(entries)
            times = sorted(e["results"]["epoch_time_s"] for e in entries.values())
            reports = ", ".join(f"[seed {e['settings'].get('seed')}]({prefix}{question}/{name}/{products.REPORT})"
                                for name, e in entries.items())
            rows.append(f"{head} {precision} | {len(entries)} of {len(runs)} | **{_pm(f['test'])}** | "
                        f"{_pm(f['best_test']) or 'not recorded'} | {_pm(f['best_val'])} | {_pm(f['last5'])} | "
                        f"{times[len(times) // 2]:.0f} s{marks} | {reports} |")
    lines = ["**The assignment** (Q1 and Q2, `full` profile): each configuration over its seeds, mean +- sample "
             "standard deviation (one figure where one seed is done); test accuracy on the 10,000 test images, of "
             "the last epoch's model (what the run reports) and of the epoch with the best validation accuracy "
             "(`best.h5`, tested once at the end; runs before 2026-12-07 did not record it); validation on the 10% "
             "of the train set held out. Each seed's figures: [results/README.md]"
             f"({prefix}README.md).", "", *rows]
    for host, mark in hosts.items():
        lines += ["", f"{mark} {host}"]
    for precision, entries in _by_precision(refs.get("q1", {}), list(refs.get("q1", {}))).items():
        f = _figures(entries)
        lines += ["", f"Q1 beside the assignment's original write-up, which states {Q1_STATED}: in {precision}, "
                      f"best validation accuracy {_pm(f['best_val'])}, last epoch's "
                      f"{_pm(f['final_val'])} (epoch {f['epochs'][0]}; {_seeds(entries)})."]
    figures = [f"![Q2 on {report.DATASET_NAMES.get(d, d)}: validation accuracy per epoch]"
               f"({prefix}q2/val_accuracy_{d}.png)" for d in _datasets(refs, "q2")]
    discussion = _discussion(planned, refs)
    return lines + ([""] + figures if figures else []) + [""] + _transfer(planned, refs, prefix) + discussion


def _discussion(planned, refs):
    """Markdown lines: "what the results show", written from the committed figures, so it cannot disagree with them.

    Two configurations differ when their mean test accuracies are more than twice the larger of their spreads
    apart: the standard deviation over seeds where a configuration has two or more, else the standard deviation
    of its run's last five validation accuracies (epoch-to-epoch noise, a lower bound on seed-to-seed noise).
    """
    import numpy as np

    groups = {}  # (question, dataset) -> [(label, figures, spread, spread kind)]
    for (question, _), runs in _configurations([run for q in DELIVERED for run in planned.get(q, [])]).items():
        by_precision = _by_precision(refs.get(question, {}), [run.name for run in runs])
        if not by_precision:
            continue
        entries = max(by_precision.values(), key=len)  # the precision with the most seeds
        f = _figures(entries)
        seeds, e = len(f["test"]), next(iter(entries.values()))
        tails = [100 * x["history"]["val_accuracy"].tail(5).to_numpy(float) for x in entries.values()]
        spread = float(np.std(f["test"] if seeds > 1 else tails[0], ddof=1)) if max(seeds, len(tails[0])) > 1 else 0.0
        label = _q2_label(e) if question == "q2" else f"{report.network_name(e['results']['model'])}"
        slopes = [float(np.polyfit(np.arange(len(t)), t, 1)[0]) for t in tails if len(t) >= 3]
        groups.setdefault((question, e["settings"].get("dataset")), []).append(
            {"label": label, "f": f, "n": seeds, "spread": spread,
             "rising": bool(slopes) and float(np.mean(slopes)) > 0.2,
             "optimizer": e["settings"].get("optimizer"),
             "gaps": [100 * x["results"]["train_val_gap"] for x in entries.values()
                      if x["results"].get("train_val_gap") is not None]})
    if not groups:
        return []
    lines = ["**What the results show** (computed from the figures above by `make results`):", ""]
    for (question, dataset), configs in sorted(groups.items()):
        name = report.DATASET_NAMES.get(dataset, dataset)
        n = sorted({c["n"] for c in configs})
        seeds = f"{n[0]} seed{'s' if n[0] > 1 else ''} each" if len(n) == 1 else f"{n[0]}-{n[-1]} seeds"
        if question == "q1":
            c = configs[0]
            lines.append(f"- **Q1** ({seeds.removesuffix(' each')}): {c['label']} trained from scratch with Adam "
                         f"reached "
                         f"{_pm(c['f']['best_val'])} best validation accuracy and {_pm(c['f']['final_val'])} at "
                         f"epoch 20, against the original write-up's {Q1_STATED}; its test accuracy was "
                         f"{_pm(c['f']['test'])}.")
            precision = precision_summary(refs)
            lines += [precision] if precision else []
            continue
        ranked = sorted(configs, key=lambda c: -np.mean(c["f"]["test"]))
        order = "; ".join(f"{c['label']} {_pm(c['f']['test'])}" for c in ranked)
        calls = []
        for i, a in enumerate(ranked):
            for b in ranked[i + 1:]:
                gap, bound = np.mean(a["f"]["test"]) - np.mean(b["f"]["test"]), 2 * max(a["spread"], b["spread"])
                verdict = "exceeds" if gap > bound else "is within"
                calls.append(f"{report.OPTIMIZER_NAMES[a['optimizer']]} over "
                             f"{report.OPTIMIZER_NAMES[b['optimizer']]}: {gap:.2f} points, which {verdict} twice "
                             f"the larger spread ({bound:.2f})")
        kind = ("the standard deviation over seeds" if min(n) > 1 else "with one seed, the standard deviation of "
                "each run's last five validation accuracies, a lower bound on seed-to-seed noise, so a difference "
                "that exceeds it is suggestive, not established")
        lines.append(f"- **Q2 on {name}** ({seeds}), test accuracy: {order}. {'; '.join(calls)} (spread: {kind}).")
    q2 = {d: {c["optimizer"]: c for c in cs} for (q, d), cs in groups.items() if q == "q2"}
    if set(DATASETS) <= set(q2):
        drops = [np.mean(q2["cifar10"][o]["f"]["test"]) - np.mean(q2["cifar100"][o]["f"]["test"])
                 for o in q2["cifar10"] if o in q2["cifar100"]]
        rising = {d: sum(c["rising"] for c in q2[d].values()) for d in DATASETS}
        lines.append(f"- **CIFAR-100 against CIFAR-10**: each Q2 configuration scored {min(drops):.1f}-"
                     f"{max(drops):.1f} points lower on CIFAR-100 (100 classes of 500 training images, against 10 "
                     f"of 5,000). Validation accuracy was still rising at epoch 20 (by more than 0.2 points an "
                     f"epoch over the last five) in {rising['cifar100']} of {len(q2['cifar100'])} CIFAR-100 "
                     f"configurations and {rising['cifar10']} of {len(q2['cifar10'])} on CIFAR-10: more epochs "
                     f"would likely help CIFAR-100 more.")
    gaps = {}
    for (_, dataset), configs in groups.items():
        gaps.setdefault(dataset, []).extend(g for c in configs for g in c["gaps"])
    if any(gaps.values()):
        parts = [f"{min(g):.1f}-{max(g):.1f} points on {report.DATASET_NAMES.get(d, d)}"
                 for d, g in sorted(gaps.items()) if g]
        lines.append(f"- **Overfitting**: at epoch 20 every network classified more of its (augmented) training "
                     f"images right than of the held-out validation images, by {' and '.join(parts)} (each run's "
                     f"gap is in results/README.md); none of these runs tried a remedy, so the figures do not say "
                     f"which would close it.")
    for dataset in _datasets(refs, TRANSFER):
        runs = sorted((e for e in refs[TRANSFER].values() if e["settings"].get("dataset") == dataset),
                      key=lambda e: -e["results"]["test_accuracy"])
        parts, gains = [], []
        for e in runs:
            head, tuned = _head_and_tuned(e)
            after = (f", validation {100 * head:.2f}% after the head's {_count(e['settings']['epochs'], 'epoch')} "
                     f"and {100 * tuned:.2f}% after fine-tuning" if tuned is not None else "")
            parts.append(f"{_transfer_label(e)}: {100 * e['results']['test_accuracy']:.2f}%{after}")
            if tuned is not None:
                optimizer = e["settings"].get("optimizer")
                gains.append(f"{100 * (tuned - head):+.2f}{'' if gains else ' points'} with "
                             f"{report.OPTIMIZER_NAMES.get(optimizer, optimizer)}")
        line = (f"- **Q3 on {report.DATASET_NAMES.get(dataset, dataset)}** ({len(runs)} run"
                f"{'s' if len(runs) > 1 else ''}, one seed), test accuracy: {'; '.join(parts)}.")
        if gains:
            listed = gains[0] if len(gains) == 1 else f"{', '.join(gains[:-1])} and {gains[-1]}"
            line += (f" Fine-tuning the top of the base changed validation accuracy over the head alone by "
                     f"{listed}{_fine_tune_rates(runs)}.")
        scratch = [np.mean(c["f"]["test"]) for c in groups.get(("q2", dataset), [])]
        if scratch:
            gap = 100 * runs[0]["results"]["test_accuracy"] - max(scratch)
            epochs = sorted({n for c in groups[("q2", dataset)] for n in c["f"]["epochs"]})
            line += (f" Trained from scratch for {'/'.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''} "
                     f"(Q2), its configurations scored {min(scratch):.2f}-"
                     f"{max(scratch):.2f}%: the best transfer run is {abs(gap):.2f} points "
                     f"{'above' if gap >= 0 else 'below'} the best of them.")
        lines.append(line)
    return lines + [""]


def _transfer(planned, refs, prefix):
    """Markdown lines: Q3's runs at full length (a table, and per data set a figure of their validation accuracy
    against Q2's training from scratch at equal epochs), or the note on what it needs."""
    done = refs.get(TRANSFER, {})
    if not done:
        return [Q3_NOTE, ""]
    rows = ["| data set | base | head optimizer | test accuracy | best validation accuracy | validation accuracy "
            "after the head's epochs | after fine-tuning | report |", "|---|---|---|---|---|---|---|---|"]
    ordered = sorted(done.items(), key=lambda item: (item[1]["settings"].get("dataset"), item[0]))
    bases = list(dict.fromkeys(e["results"].get("weights") for _, e in ordered))  # each told once, below
    for name, e in ordered:
        s, r = e["settings"], e["results"]
        head, tuned = _head_and_tuned(e)
        rows.append(f"| {report.DATASET_NAMES.get(s.get('dataset'), s.get('dataset'))} | "
                    f"({bases.index(r.get('weights')) + 1}) | "
                    f"{report.OPTIMIZER_NAMES.get(s.get('optimizer'), s.get('optimizer'))} | "
                    f"**{100 * r['test_accuracy']:.2f}%** | {100 * r['best_val_accuracy']:.2f}% | "
                    f"{100 * head:.2f}% | {'no fine-tuning' if tuned is None else f'{100 * tuned:.2f}%'} | "
                    f"[report]({prefix}{TRANSFER}/{name}/{products.REPORT}) |")
    waiting = [run.name for run in planned.get(TRANSFER, []) if run.name not in done]
    lines = [f"**Q3** (transfer learning; {len(done)} of {len(planned.get(TRANSFER, []))} runs at full length"
             + (f"; not yet: {', '.join(waiting)}" if waiting else "") + "):", "", *rows, "",
             "Bases: " + "; ".join(f"({i}) {base}" for i, base in enumerate(bases, 1)) + ".", ""]
    lines += [f"![Q3 on {report.DATASET_NAMES.get(d, d)} against training from scratch]"
              f"({prefix}{TRANSFER}/transfer_vs_scratch_{d}.png)" for d in _datasets(refs, TRANSFER)]
    imagenet = any(e["settings"].get("weights") == "imagenet" for e in done.values())
    return lines + ([""] if imagenet else ["", Q3_NOTE, ""])


def _draw_transfer(refs, results):
    """Per data set, Q3's validation accuracy per epoch beside Q2's from scratch (seeds as bands), one figure."""
    from resnet_keras import plots

    for dataset in _datasets(refs, TRANSFER):
        curves = {}
        for e in refs[TRANSFER].values():
            if e["settings"].get("dataset") == dataset:
                curves.setdefault(f"transfer: {_transfer_label(e)}", []).append(e["history"])
        for e in refs.get("q2", {}).values():
            if e["settings"].get("dataset") == dataset:
                curves.setdefault(f"from scratch: {_q2_label(e)}", []).append(e["history"])
        heads = {e["settings"].get("epochs") for e in refs[TRANSFER].values()
                 if e["settings"].get("dataset") == dataset and e["settings"].get("fine_tune_epochs")}
        fig = plots.plot_overlay(curves, "val_accuracy", f"Q3 on {report.DATASET_NAMES.get(dataset, dataset)}: "
                                                         f"transfer against training from scratch",
                                 stage=heads.pop() if len(heads) == 1 else None)
        plots.save_figure(fig, os.path.join(results, TRANSFER, f"transfer_vs_scratch_{dataset}.png"))


def _head_and_tuned(entry):
    """A Q3 run's validation accuracy after its head's epochs, and after fine-tuning (None without)."""
    h = entry["history"]
    head = h[h["epoch"] <= entry["settings"].get("epochs", len(h))]
    return float(head["val_accuracy"].iloc[-1]), (float(h["val_accuracy"].iloc[-1]) if len(h) > len(head) else None)


def _fine_tune_rates(runs):
    """'; each fine-tuned at learning rate r: 1/10 of the head's for Adam, ...' ('' unless the runs share r)."""
    tuned = [e["settings"] for e in runs if e["settings"].get("fine_tune_epochs")]
    rates = {s.get("fine_tune_learning_rate") for s in tuned}
    if len(rates) != 1 or None in rates or any(not s.get("learning_rate") for s in tuned):
        return ""
    rate, by_ratio = rates.pop(), {}
    for s in tuned:
        name = report.OPTIMIZER_NAMES.get(s.get("optimizer"), s.get("optimizer"))
        by_ratio.setdefault(f"{s['learning_rate'] / rate:.3g}", []).append(name)
    return (f"; each fine-tuned at learning rate {rate:g}: " +
            ", ".join(f"1/{ratio} of the head's for {' and '.join(names)}" for ratio, names in by_ratio.items()))


def _count(n, noun):
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _transfer_label(entry):
    s = entry["settings"]
    tuned = f", then {_count(s['fine_tune_epochs'], 'epoch')} of fine-tuning" if s.get("fine_tune_epochs") else ""
    return f"{report.OPTIMIZER_NAMES.get(s.get('optimizer'), s.get('optimizer'))} head{tuned}"


def _datasets(refs, question):
    return sorted({e["settings"].get("dataset") for e in refs.get(question, {}).values()})


def _configurations(runs):
    """{(question, configuration): its runs in plan order}: a configuration is a run's name without its seed."""
    import re

    configs = {}
    for run in runs:
        configs.setdefault((run.question, re.sub(r"-seed\d+$", "", run.name)), []).append(run)
    return configs


def _by_precision(entries, names):
    """{precision: {run: entry}} of `entries` named in `names`, by the precision each trained in."""
    groups = {}
    for name in names:
        if name in entries:
            groups.setdefault(entries[name]["provenance"].get("precision"), {})[name] = entries[name]
    return groups


def _host(entry):
    p = entry["provenance"]
    flags = " ".join(p.get("cpu_flags") or []) or "none listed"
    return (f"{p.get('device')}, {p.get('backend')}, {p.get('precision')}; CPU flags: {flags}; commit "
            f"{p.get('commit')}, {(p.get('finished') or '')[:10]}.")


def _figures(entries):
    """Each figure of a group of runs, as a list of percentages (one per run that has it)."""
    def pct(key):
        return [100 * e["results"][key] for e in entries.values() if e["results"].get(key) is not None]

    return {"test": pct("test_accuracy"), "best_test": pct("best_test_accuracy"), "best_val": pct("best_val_accuracy"),
            "final_val": pct("final_val_accuracy"),
            "epochs": [e["results"]["epochs_trained"] for e in entries.values()],
            "last5": [100 * float(e["history"]["val_accuracy"].tail(5).mean()) for e in entries.values()
                      if "val_accuracy" in e["history"]]}


def _pm(values):
    """"83.10 +- 0.52% (n = 3)", "80.08%" for one value, "" for none."""
    if not values:
        return ""
    return f"{_mean_std(values)}%" + (f" (n = {len(values)})" if len(values) > 1 else "")


def _mean_std(values):
    """"7.52 +- 0.20" (mean +- sample standard deviation), "7.52" for one value, "" for none."""
    import numpy as np

    if not values:
        return ""
    return f"{np.mean(values):.2f}" + (f" +- {np.std(values, ddof=1):.2f}" if len(values) > 1 else "")


def _seeds(entries):
    seeds = [str(e["settings"].get("seed")) for e in entries.values()]
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}"


def _seed_table(refs, prefix):
    """Markdown lines: every seed of the assignment's runs and of the precision study, one row each."""
    rows = ["| run | precision | test accuracy (last epoch) | best-validation model: test accuracy (epoch) | best "
            "validation accuracy | validation, mean of the last 5 epochs | final train - validation gap | epochs "
            "| time per epoch (median of epochs 2 on) | training time | computed on | commit, finished |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for question in (*DELIVERED, PRECISION):
        for name, e in refs.get(question, {}).items():
            r, p, h = e["results"], e["provenance"], e["history"]
            best = (f"{100 * r['best_test_accuracy']:.2f}% ({r['best_epoch']})"
                    if r.get("best_test_accuracy") is not None else "not recorded")
            gap = f"{100 * r['train_val_gap']:.2f} points" if r.get("train_val_gap") is not None else ""
            rows.append(f"| [{question}/{name}]({prefix}{question}/{name}/) | {p.get('precision')} | "
                        f"{100 * r['test_accuracy']:.2f}% | {best} | {100 * r['best_val_accuracy']:.2f}% | "
                        f"{100 * float(h['val_accuracy'].tail(5).mean()):.2f}% | {gap} | {r['epochs_trained']} | "
                        f"{r['epoch_time_s']:.0f} s | {r['train_time_s'] / 60:.0f} min | {p.get('device')}, "
                        f"{p.get('backend')} | {p.get('commit')}, {(p.get('finished') or '')[:16]} |")
    if len(rows) == 2:
        return []
    return ["**Every seed** (the runs whose mean +- standard deviation the rows above give, and the precision "
            "study's):", "", *rows, ""]


def _precision_sides(refs):
    """{"mixed_bfloat16": Q1's own runs in it, "float32": the precision study's float32 runs}, each {name: entry}."""
    return {"mixed_bfloat16": _by_precision(refs.get("q1", {}), list(refs.get("q1", {}))).get("mixed_bfloat16", {}),
            "float32": _by_precision(refs.get(PRECISION, {}), list(refs.get(PRECISION, {}))).get("float32", {})}


def _precision_checks(figures):
    """The rule of docs/performance.md for each figure: [(what, m_bf16 - m_fp32, allowed margin, pooled standard
    deviation, holds)]."""
    import numpy as np

    checks = []
    for key, what in (("test", "test accuracy"), ("last5", "mean of the last 5 validation accuracies")):
        b, f32 = figures["mixed_bfloat16"][key], figures["float32"][key]
        pooled = float(np.sqrt((np.var(b, ddof=1) + np.var(f32, ddof=1)) / 2))
        margin = max(pooled, 0.5)
        diff = float(np.mean(b) - np.mean(f32))
        checks.append((what, diff, margin, pooled, diff >= -margin))
    return checks


def _verdict(checks):
    return ("mixed bfloat16 holds: `precision: auto` keeps it on CPUs with bfloat16 instructions"
            if all(c[-1] for c in checks) else "mixed bfloat16 fails: `precision: auto` should go back to float32 "
                                               "on CPUs")


def precision_verdict(refs):
    """Markdown lines: the rule of docs/performance.md applied to Q1's runs in mixed bfloat16 and the precision
    study's in float32: per figure, m_bf16 >= m_fp32 - max(pooled standard deviation, 0.5 points)."""
    sides = _precision_sides(refs)
    if not any(sides.values()):
        return []
    figures = {side: _figures(entries) for side, entries in sides.items()}
    rows = ["| precision | runs | test accuracy (last epoch) | validation accuracy, mean of the last 5 epochs |",
            "|---|---|---|---|"]
    for side, f in figures.items():
        rows.append(f"| {side} | {_seeds(sides[side]) if sides[side] else 'none yet'} | {_pm(f['test'])} | "
                    f"{_pm(f['last5'])} |")
    lines = ["**Precision** (Q1's recipe in mixed bfloat16, its own runs, against the precision study's float32 "
             "runs; the rule of [docs/performance.md](../docs/performance.md), written before the runs "
             "finished):", "", *rows, ""]
    if min(len(entries) for entries in sides.values()) < SEEDS:
        return lines + [f"No verdict yet: the rule needs {SEEDS} seeds of each precision.", ""]
    checks = _precision_checks(figures)
    for what, diff, margin, pooled, held in checks:
        lines.append(f"- {what}: mixed bfloat16 - float32 = {diff:+.2f} points; allowed -{margin:.2f} (pooled "
                     f"standard deviation {pooled:.2f}): {'holds' if held else 'fails'}.")
    return lines + ["", f"Verdict: {_verdict(checks)}.", ""]


def precision_summary(refs):
    """One line of "what the results show": Q1's recipe in each precision (test accuracy, the mean of the last five
    validation accuracies) and where the rule of docs/performance.md stands; None before both precisions ran."""
    sides = _precision_sides(refs)
    if not all(sides.values()):
        return None
    figures = {side: _figures(entries) for side, entries in sides.items()}
    parts = []
    for side, who in (("float32", "the precision study"), ("mixed_bfloat16", "Q1's own runs")):
        f = figures[side]
        parts.append(f"{side.replace('_', ' ')} ({who}, {_count(len(f['test']), 'seed')}) {_pm(f['test'])}, the "
                     f"last five validation accuracies averaging {_pm(f['last5'])}")
    if min(len(entries) for entries in sides.values()) < SEEDS:
        stands = (f"Not a verdict yet: the rule of docs/performance.md decides once each precision has {SEEDS} "
                  f"seeds (results/README.md)")
    else:
        stands = f"The rule of docs/performance.md: {_verdict(_precision_checks(figures))}"
    return f"- **Precision** (Q1's recipe), test accuracy: {'; '.join(parts)}. {stands}."


def _paper(runs, done, prefix):
    """Markdown lines: the paper's CIFAR-10 table, every network of the study's plan over the runs it has, beside
    the paper's figure and akamaster's with their sources, and whether the mean is within `PAPER_BAR` of the
    paper's; then error against depth and the paper's figure 6, once a run is done."""
    import numpy as np

    facts = _facts(done)
    networks = {}
    for run in runs:
        networks.setdefault(_network(run.name, run.settings), []).append(run)
    best_shown = any(f.get("best_test_accuracy") is not None for f in facts.values())
    head = ["network", "runs", "test error, last epoch (%)", "lowest of the runs (%)",
            *(["test error of the best-validation model (%)"] if best_shown else []),
            "He et al. 2015, Table 6 (%)", "akamaster (%)", f"mean within {PAPER_BAR} points of the paper",
            "parameters", "computed on", "date, commit"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for network, planned in networks.items():
        s = planned[0].settings
        paper = report.paper_error(s.get("dataset"), s.get("family"), s.get("depth"), s.get("shortcut", "zero_pad"))
        theirs = AKAMASTER_CIFAR10_ERROR.get(s.get("depth")) if paper is not None else None
        finished = [name for name in (run.name for run in planned) if name in facts]
        errors = [100 * (1 - facts[name]["test_accuracy"]) for name in finished]
        best = [100 * (1 - facts[name]["best_test_accuracy"]) for name in finished
                if facts[name].get("best_test_accuracy") is not None]
        computed = [_computed(done[name]["provenance"]) for name in finished]
        where = "; ".join(dict.fromkeys(where for where, _ in computed))
        when = "; ".join(dict.fromkeys(when for _, when in computed))
        mean = float(np.mean(errors)) if errors else None
        cells = [network, f"{len(finished)} of {len(planned)}",
                 f"**{_mean_std(errors)}**" if errors else "",
                 f"{min(errors):.2f}" if errors else "",
                 *([_mean_std(best)] if best_shown else []),
                 "" if paper is None else f"{paper:.2f}", "" if theirs is None else f"{theirs:.2f}",
                 "" if mean is None or paper is None else
                 f"{'yes' if abs(mean - paper) <= PAPER_BAR else 'no'} ({mean - paper:+.2f})",
                 f"{facts[finished[0]]['params']:,}" if finished else "", where, when]
        rows.append("| " + " | ".join(cells) + " |")
    lines = [f"**The paper's CIFAR-10 table** (`params/study_paper.yaml`, `make studies`: {len(done)} of "
             f"{len(runs)} runs at full length on today's code): test error on the 10,000 test images of the last "
             "epoch's model, mean +- sample standard deviation over the runs; trained on all 50,000 train images, "
             "so no validation set chooses an epoch.", "", *rows, "",
             "Sources: He et al. (2015), *Deep Residual Learning for Image Recognition*, Table 6 (one run per "
             "network; ResNet-110: the best of 5; the recipe chosen on a 45k/5k split). akamaster/"
             "pytorch_resnet_cifar10, README, \"Test err(this impl.)\" (one run per network of its released "
             "models: 200 epochs on all 50k images, tested on the test set every epoch). The bar, a mean within "
             f"{PAPER_BAR} points of the paper's figure, is this project's "
             f"([docs/reproduction.md]({os.path.normpath(prefix + '../docs/reproduction.md')}"
             "#the-papers-table-on-todays-code)).", ""]
    if facts:
        lines += [f"![Test error against depth]({prefix}paper/error_vs_depth.png)",
                  f"![Plain against residual networks]({prefix}paper/plain_vs_residual.png)", ""]
    return lines


def _q2_label(entry):
    """A Q2 run's curve label: "ResNet-44, RMSprop, batch 128"."""
    s = entry["settings"]
    return (f"{report.network_name(entry['results']['model'])}, "
            f"{report.OPTIMIZER_NAMES.get(s.get('optimizer'), s.get('optimizer'))}, batch {s.get('batch_size')}")


def _facts(entries):
    """{run: its settings and results in one dict} of a question's reference entries."""
    return {name: {**e["settings"], **e["results"]} for name, e in entries.items()}


def _network(name, settings):
    """What a row names: the network for the study's runs (family and depth), else the run without its seed."""
    import re

    from resnet_keras import plots

    if "family" not in settings:
        return re.sub(r"-seed\d+$", "", name)
    family, depth = settings["family"], settings.get("depth")
    label = plots.network_label(family, depth) if family in ("resnet", "plain") else f"{family}-{depth}"
    return label + (f" (width {settings['width']})" if settings.get("width", 1) != 1 else "")


def _computed(provenance):
    """Where a committed run was computed ("device, backend, precision") and when ("date, commit")."""
    p = provenance
    return (f"{p.get('device')}, {p.get('backend')}, {p.get('precision')}",
            f"{(p.get('finished') or '')[:10]}, {p.get('commit')}")


def _table(facts, entries):
    """Markdown: one row per network over its seeds."""
    import pandas as pd

    from resnet_keras.report import paper_error

    rows = []
    for name, f in facts.items():
        where, when = _computed(entries[name]["provenance"])
        rows.append({"network": _network(name, f), "seed": f.get("seed"), "error": 100 * (1 - f["test_accuracy"]),
                     "paper": paper_error(f.get("dataset"), f.get("family", "resnet"), f.get("depth"),
                                          f.get("shortcut", "zero_pad")),
                     "params": f.get("params"), "epochs": f.get("epochs_trained"), "where": where, "when": when})
    out = ["| network | seeds | test error (%) | best (%) | paper (%) | parameters | epochs | computed on "
           "| date, commit |", "|---|---|---|---|---|---|---|---|---|"]
    for network, part in pd.DataFrame(rows).groupby("network", sort=False):
        errors = part["error"]
        spread = f" +- {errors.std():.2f}" if len(part) > 1 else ""
        paper = part["paper"].iloc[0]
        out.append(f"| {network} | {len(part)} | {errors.mean():.2f}{spread} | {errors.min():.2f} | "
                   f"{'' if pd.isna(paper) else f'{paper:.2f}'} | {part['params'].iloc[0]:,} | "
                   f"{part['epochs'].iloc[0]} | {'; '.join(dict.fromkeys(part['where']))} | "
                   f"{'; '.join(dict.fromkeys(part['when']))} |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m resnet_keras.summary.reference", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("collect", "draw", "redraw", "predict"))
    ap.add_argument("--only", nargs="*", help="redraw, predict: these runs (question/run); default: every "
                                              "committed one")
    ap.add_argument("--outputs", default="outputs", help="where the sweep's runs are (default: outputs)")
    ap.add_argument("--results", default="results", help="the reference folder (default: results)")
    ap.add_argument("--params", default="params", help="folder of params files (default: params)")
    ap.add_argument("--profile", default="full", help="the plan a reference must match (default: full)")
    ap.add_argument("--readme", default="README.md", help="README whose results block `draw` rewrites")
    args = ap.parse_args(argv)
    try:
        if args.command == "collect":
            copied = collect(args.outputs, args.results, args.params, args.profile)
            print(f"reference: {len(copied)} runs copied into {args.results}/: {', '.join(copied) or 'none'}")
        elif args.command == "predict":
            done = predict(args.results, args.only)
            print(f"reference: test predictions recorded for {len(done)} runs: {', '.join(done) or 'none'}")
        elif args.command == "redraw":
            done = redraw(args.results, args.params, args.profile, args.only)
            print(f"reference: {len(done)} reports redrawn in {args.results}/")
        else:
            draw(args.results, args.readme, args.params, args.profile)
            print(f"reference: drew {args.results}/README.md and the results block of {args.readme}")
    except ConfigError as e:
        print(f"reference: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
