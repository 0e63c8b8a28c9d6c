"""Reference results: the small products of full-length runs, committed in `results/`, and what is drawn from them.

    make reference    # python -m resnet_keras.summary.reference collect: finished full-length runs -> results/
    make results      # python -m resnet_keras.summary.reference draw: results/ -> its tables, figures, the README's

A run is a reference when it finished under the sweep with exactly the
parameters of its run in the `full` profile's plan. Its folder keeps what is
small and enough to redraw every comparison:

    results/<question>/<run>/history.csv   one row per epoch (the run's own file)
    results/<question>/<run>/run.json      {"settings": every parameter, "results": results.json's figures,
                                            "provenance": device, CPU flags, backend, precision, commit,
                                            finished, host, wall time (of the last
                                            attempt: `resumed_after` says how many
                                            epochs an earlier one trained)}

The assignment's runs (`DELIVERED`: Q1 and Q2) keep what a grader reads and
the demo serves, too: `model.h5` (without optimizer state), `report.html`,
`curves.png`, `confusion.png` and `examples/`.

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

from resnet_keras import products
from resnet_keras.errors import ConfigError
from resnet_keras.files import atomic_path, read_json_object, write_json, write_text
from resnet_keras.summary import comparisons
from resnet_keras.sweep.params import plan, recipe  # noqa: F401 (recipe: part of this module's interface)

RUN_FILE = "run.json"
DELIVERED = ("q1", "q2")  # the assignment: its reference runs keep their model, report and figures
# The assignment's original write-up states this of Q1 (ResNet-20, Adam, 20 epochs): shown beside our run.
Q1_STATED = "about 80% validation accuracy after 20 epochs"
Q3_NOTE = ("Q3 (a ResNet-50 pretrained on ImageNet, with a new head) has no reference here: its base needs the "
           "ImageNet weights of `keras.applications`, which this project's machines cannot download (no internet; "
           "the sweep lists its runs as blocked, with the fix). Where they can be fetched, "
           "`make sweep ONLY=q3_transfer` runs it, and `make reference` adds it.")
KEPT = (products.REPORT, products.CURVES, products.CONFUSION)  # copied as they are; the model is slimmed
BEGIN, END = "<!-- reference-results -->", "<!-- /reference-results -->"


def collect(outputs="outputs", results="results", params_dir="params", profile="full"):
    """Copy every finished run of `outputs` whose parameters are its plan's (`profile`) into `results`.

    Returns the keys copied. A run already in `results` is replaced by the
    newer one only when that finished later.
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
        if known and (known["provenance"].get("finished") or "") > (record.get("finished") or ""):
            continue
        os.makedirs(target, exist_ok=True)
        with atomic_path(os.path.join(target, products.HISTORY)) as tmp:
            shutil.copyfile(os.path.join(folder, products.HISTORY), tmp)
        if run.question in DELIVERED:
            _deliver(folder, target)
        write_json(os.path.join(target, RUN_FILE), entry)  # last: the entry is complete once it exists
        copied.append(run.key)
    return copied


def _deliver(folder, target):
    """Copy a run's model (without optimizer state), report, figures and examples from `folder` to `target`."""
    for name in KEPT:
        if os.path.isfile(os.path.join(folder, name)):
            with atomic_path(os.path.join(target, name)) as tmp:
                shutil.copyfile(os.path.join(folder, name), tmp)
    with atomic_path(os.path.join(target, products.MODEL)) as tmp:
        slim_h5(os.path.join(folder, products.MODEL), tmp)
    examples = os.path.join(target, products.EXAMPLES)
    shutil.rmtree(examples, ignore_errors=True)
    if os.path.isdir(os.path.join(folder, products.EXAMPLES)):
        shutil.copytree(os.path.join(folder, products.EXAMPLES), examples)


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
    from matplotlib.ticker import MaxNLocator

    from resnet_keras import plots, report

    refs = load(results)
    planned = {}
    for run in plan(params_dir, profile):
        planned.setdefault(run.question, []).append(run)
    for dataset in _q2_datasets(refs):
        done = {n: e for n, e in refs["q2"].items() if e["settings"].get("dataset") == dataset}
        fig = plots.plot_overlay({_q2_label(e): e["history"] for e in done.values()}, "val_accuracy",
                                 f"Q2 on {report.DATASET_NAMES.get(dataset, dataset)}: validation accuracy per epoch")
        for ax in fig.axes:  # epochs are whole numbers
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        plots.save_figure(fig, os.path.join(results, "q2", f"val_accuracy_{dataset}.png"))
    for question, done in refs.items():
        if question == "paper":
            facts = _facts(done)
            histories = {name: e["history"] for name, e in done.items()}
            comparisons.paper_table(results, question, facts, histories)
            comparisons.plain_vs_residual(results, question, facts, histories)
    plots.plt.close("all")
    note = ("Drawn by `make results` from the runs in this folder (`resnet_keras/summary/reference.py`); do not edit "
            "by hand.")
    write_text(os.path.join(results, "README.md"), f"# Reference results\n\n{note}\n\n" + _block(planned, refs, ""))
    block = _block(planned, refs, os.path.relpath(results, os.path.dirname(os.path.abspath(readme or "."))) + "/")
    if readme and os.path.isfile(readme):
        with open(readme, encoding="utf-8") as f:
            text = f.read()
        if BEGIN not in text or END not in text:
            raise ConfigError(f"{readme} has no {BEGIN} ... {END} block; add the two markers where the results go")
        head, rest = text.split(BEGIN, 1)
        write_text(readme, head + BEGIN + "\n" + block + END + rest.split(END, 1)[1])
    return block


def _block(planned, refs, prefix):
    """Markdown: each question with references (the paper's table first), its table and figures; then one table
    of the networks that have none yet."""
    lines, waiting = _assignment(planned, refs, prefix), []
    for question in sorted(planned, key=lambda q: q != "paper"):
        runs, done = planned[question], refs.get(question, {})
        facts = _facts(done)
        missing = list(dict.fromkeys(_network(run.name, run.settings) for run in runs if run.name not in done))
        if missing and question not in DELIVERED:  # the assignment's table lists its own
            waiting.append(f"| {question} | {len(done)} of {len(runs)} | {', '.join(missing)} |")
        if not facts or question in DELIVERED:
            continue
        lines += [f"**{question}** ({len(done)} of {len(runs)} runs at full length)", "", _table(facts, done), ""]
        if question == "paper":
            lines += [f"![Test error against depth]({prefix}paper/error_vs_depth.png)",
                      f"![Plain against residual networks]({prefix}paper/plain_vs_residual.png)", ""]
    if waiting:
        lines += ["Not yet at full length:", "", "| study | runs at full length | networks without a reference |",
                  "|---|---|---|", *waiting]
    return "\n".join(lines).strip() + "\n"


def _assignment(planned, refs, prefix):
    """Markdown lines: the assignment's runs (Q1, then Q2 by data set) in plan order, with their figures, the
    machine they trained on and their reports; Q1 beside the original write-up's figure; Q2's curves; Q3's note."""
    from resnet_keras import report

    runs = [run for question in DELIVERED for run in planned.get(question, [])]
    if not runs:
        return []
    rows = ["| question | data set | network | optimizer | batch | test accuracy | best validation accuracy "
            "| epochs | time per epoch | report |", "|---|---|---|---|---|---|---|---|---|---|"]
    hosts = {}
    for run in sorted(runs, key=lambda r: (r.question, r.settings.get("dataset", ""))):
        s, entry = run.settings, refs.get(run.question, {}).get(run.name)
        dataset = report.DATASET_NAMES.get(s.get("dataset"), s.get("dataset"))
        optimizer = report.OPTIMIZER_NAMES.get(s.get("optimizer"), s.get("optimizer"))
        if entry is None:
            rows.append(f"| {run.question.upper()} | {dataset} | ResNet-{s.get('depth')} | {optimizer} | "
                        f"{s.get('batch_size')} | not yet at full length | | | | |")
            continue
        r, p = entry["results"], entry["provenance"]
        host = f"{p.get('device')}, {p.get('backend')}, {p.get('precision')}"
        mark = hosts.setdefault(host, ("*" * (len(hosts) + 1), p))[0]
        rows.append(f"| {run.question.upper()} | {dataset} | {report.network_name(r['model'])} | {optimizer} | "
                    f"{s.get('batch_size')} | **{100 * r['test_accuracy']:.2f}%** | "
                    f"{100 * r['best_val_accuracy']:.2f}% | {r['epochs_trained']} | {r['epoch_time_s']:.0f} s{mark} | "
                    f"[report]({prefix}{run.question}/{run.name}/{products.REPORT}) |")
    lines = ["**The assignment** (Q1 and Q2, `full` profile; test accuracy on the 10,000 test images, validation on "
             "the 10% of the train set held out):", "", *rows]
    for host, (mark, p) in hosts.items():
        flags = " ".join(p.get("cpu_flags") or []) or "none listed"
        lines += ["", f"{mark} {host}; CPU flags: {flags}; commit {p.get('commit')}, "
                      f"{(p.get('finished') or '')[:10]}."]
    q1 = [e for e in refs.get("q1", {}).values()]
    if q1:
        r = q1[0]["results"]
        lines += ["", f"Q1 beside the assignment's original write-up, which states {Q1_STATED}: this run's best "
                      f"validation accuracy is {100 * r['best_val_accuracy']:.2f}%, its last "
                      f"{100 * r['final_val_accuracy']:.2f}% (epoch {r['epochs_trained']})."]
    figures = [f"![Q2 on {report.DATASET_NAMES.get(d, d)}: validation accuracy per epoch]"
               f"({prefix}q2/val_accuracy_{d}.png)" for d in _q2_datasets(refs)]
    return lines + ([""] + figures if figures else []) + ["", Q3_NOTE, ""]


def _q2_datasets(refs):
    return sorted({e["settings"].get("dataset") for e in refs.get("q2", {}).values()})


def _q2_label(entry):
    """A Q2 run's curve label: "ResNet-44, RMSprop, batch 128"."""
    from resnet_keras import report

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


def _table(facts, entries):
    """Markdown: one row per network over its seeds."""
    import pandas as pd

    from resnet_keras.report import paper_error

    rows = []
    for name, f in facts.items():
        p = entries[name]["provenance"]
        rows.append({"network": _network(name, f), "seed": f.get("seed"), "error": 100 * (1 - f["test_accuracy"]),
                     "paper": paper_error(f.get("dataset"), f.get("family", "resnet"), f.get("depth"),
                                          f.get("shortcut", "zero_pad")),
                     "params": f.get("params"), "epochs": f.get("epochs_trained"),
                     "where": f"{p.get('device')}, {p.get('backend')}, {p.get('precision')}",
                     "when": f"{(p.get('finished') or '')[:10]}, {p.get('commit')}"})
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
    ap.add_argument("command", choices=("collect", "draw"))
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
        else:
            draw(args.results, args.readme, args.params, args.profile)
            print(f"reference: drew {args.results}/README.md and the results block of {args.readme}")
    except ConfigError as e:
        print(f"reference: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
