"""The sweep's summary of every run: `results.csv`, the study's comparisons and `index.html`.

Written once, at the end of a sweep, from the runs' records; a run never
executes this module, so editing it invalidates no finished run.
"""

import hashlib
import json
import os
import re
import time

from resnet_keras import products
from resnet_keras.files import source_digest, write_json, write_text
from resnet_keras.summary import comparisons

SUMMARY_FILE = ".summary.json"  # in the outputs folder: what the index was last drawn from

COLUMNS = ["question", "run", "status", "dataset", "model", "family", "depth", "params", "optimizer", "batch_size",
           "epochs", "best_val_accuracy", "final_val_accuracy", "test_accuracy", "train_val_gap", "train_time_s",
           "epoch_time_s", "latency_ms", "throughput_img_s", "elapsed_s", "backend", "host", "worker", "weights",
           "seed", "error", "where", "report"]


def results_table(outputs, runs, records):
    """One row per run (pandas DataFrame), in plan order."""
    import pandas as pd

    rows = []
    for run in runs:
        rec = records.get(run.key, {"status": "not run"})
        report = os.path.join(run.question, run.name, products.REPORT)
        rows.append({**{k: v for k, v in run_facts(run, rec).items() if k in COLUMNS},
                     "question": run.question, "run": run.name, "status": rec["status"],
                     "elapsed_s": rec.get("elapsed_s"), "host": rec.get("host"), "worker": rec.get("worker"),
                     "error": rec.get("error"), "where": rec.get("where"),
                     "report": report if os.path.isfile(os.path.join(outputs, report)) else None})
    table = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("depth", "params", "batch_size", "epochs", "seed"):
        table[col] = table[col].astype("Int64")  # integers, blank where a question has none
    return table


def run_facts(run, record):
    """What the index knows of a run: its settings (`Run.settings`), then what its `results.json` measured.

    A result wins over the setting of the same name: `precision: auto` is recorded as the policy it resolved to.
    """
    return {**run.settings, **record.get("results", {})}


def write_summary(outputs, runs, records, reference=None):
    """Write `results.csv`, the comparisons of each question and `index.html`; return the index path.

    `reference`: the folder of reference results (`reference.py`); each run of
    the same network and recipe as references there is drawn over their curves.
    """
    import html

    import pandas as pd

    from resnet_keras import plots
    from resnet_keras.summary import reference as references

    table = results_table(outputs, runs, records)
    index = os.path.join(outputs, "index.html")
    refs = references.load(reference) if reference else {}
    digest = _summary_digest(outputs, table, runs, refs)
    if _summary_is_current(outputs, index, digest):
        return index  # nothing it shows has changed: drawing a dozen figures again would be most of a no-op sweep
    write_text(os.path.join(outputs, "results.csv"), table.to_csv(index=False))
    compare = {run.question: run.compare for run in runs}
    sections = []
    for question, group in table.groupby("question", sort=False):
        ok = list(group.loc[group.status == "ok", "run"])
        results = {run.name: run_facts(run, records[run.key]) for run in runs
                   if run.question == question and run.name in ok}
        histories = {}
        for name in ok:
            path = os.path.join(outputs, question, name, products.HISTORY)
            if os.path.isfile(path):
                histories[name] = pd.read_csv(path)
        parts = [f"<h2>{html.escape(question)}</h2>", _html_table(outputs, group)]
        if histories:
            metric = "val_accuracy" if any("val_accuracy" in h for h in histories.values()) else "accuracy"
            fig = plots.plot_overlay(histories, metric, f"{question}: {metric} per epoch, all runs")
            parts.append(comparisons.figure_html(outputs, question, "comparison.png", fig))
        for name in compare.get(question, ()):
            parts.append(comparisons.DRAW[name](outputs, question, results, histories))
        if refs.get(question):
            settings = {run.name: run.settings for run in runs if run.question == question and run.name in histories}
            parts.append(_against_reference(outputs, question, settings, histories, refs[question]))
        sections.append("\n".join(p for p in parts if p))
    ok = int((table.status == "ok").sum())
    blocked = int((table.status == "blocked").sum())
    page = _PAGE.format(ok=ok, failed=len(table) - ok - blocked, blocked=blocked, total=len(table),
                        when=time.strftime("%Y-%m-%d %H:%M"), sections="\n".join(sections))
    write_text(index, page)
    write_json(os.path.join(outputs, SUMMARY_FILE), {"digest": digest})
    return index


def _summary_digest(outputs, table, runs, refs):
    """Hash of everything the summary shows: the table, the comparisons, the runs' histories, the references,
    this code."""
    h = hashlib.sha256(table.to_csv(index=False).encode())
    h.update(json.dumps({q: {n: e["provenance"] for n, e in done.items()} for q, done in refs.items()},
                        sort_keys=True, default=str).encode())
    h.update(json.dumps({r.question: list(r.compare) for r in runs}, sort_keys=True).encode())
    for module in ("summary.index", "summary.comparisons", "summary.reference", "report", "plots", "products"):
        h.update(str(source_digest(f"resnet_keras.{module}")).encode())
    for question, name in zip(table["question"], table["run"]):
        try:
            stat = os.stat(os.path.join(outputs, question, name, products.HISTORY))
            h.update(f"{question}/{name} {stat.st_size} {stat.st_mtime_ns}".encode())
        except OSError:
            pass
    return h.hexdigest()


def _summary_is_current(outputs, index, digest):
    """True when the last summary was drawn from the same `digest` and its page, table and images are all there."""
    try:
        with open(os.path.join(outputs, SUMMARY_FILE)) as f:
            if json.load(f).get("digest") != digest:
                return False
        with open(index) as f:
            images = re.findall(r'<img src="([^"]+)"', f.read())
    except (OSError, ValueError, AttributeError):
        return False
    files = ["results.csv", *images]
    return all(os.path.isfile(os.path.join(outputs, p)) for p in files)


def _against_reference(outputs, question, settings, histories, refs):
    """Each run drawn over the reference runs (`results/`) of the same network and recipe, as HTML."""
    from resnet_keras import plots
    from resnet_keras.sweep.params import recipe

    pairs = {}
    for name, own in settings.items():
        matched = [e["history"] for e in refs.values() if recipe(e["settings"]) == recipe(own)]
        if matched:
            pairs[name] = (histories[name], matched)
    if not pairs:
        return ""
    fig = plots.plot_against_reference(pairs, f"{question}: runs (solid) over the reference runs (dashed)")
    return ("<h3>Against the reference results</h3>\n<p>Each run beside the committed full-length runs of the same "
            "network and recipe (<code>results/</code>): a run on track follows their curves.</p>\n"
            + comparisons.figure_html(outputs, question, "against_reference.png", fig))


def _html_table(outputs, group):
    import html

    import pandas as pd

    shown = ["run", "status", "dataset", "model", "params", "optimizer", "batch_size", "epochs", "best_val_accuracy",
             "final_val_accuracy", "test_accuracy", "train_val_gap", "train_time_s", "epoch_time_s", "latency_ms",
             "throughput_img_s", "weights", "host", "worker"]
    shown = [c for c in shown if group[c].notna().any()]
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in shown) + "<th>files</th>"
    body = []
    for _, row in group.iterrows():
        cells = []
        for c in shown:
            v = row[c]
            text = "" if pd.isna(v) else (f"{v:.4f}" if isinstance(v, float) and c.endswith(("accuracy", "gap"))
                                                   else f"{v:,}" if c in ("params", "throughput_img_s") else str(v))
            cls = f' class="{row.status.replace(" ", "-")}"' if c == "status" else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        folder = os.path.join(row.question, row.run)
        links = [f'<a href="{folder}/{f}">{label}</a>' for label, f in products.LINKS
                 if os.path.exists(os.path.join(outputs, folder, f))]
        cells.append(f"<td>{' '.join(links)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
        if row.status in ("failed", "blocked"):
            body.append(f'<tr class="error"><td colspan="{len(shown) + 1}">{html.escape(str(row.error))}'
                        f" <small>at {html.escape(str(row['where']))}</small></td></tr>")
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(body) + "\n</table>"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ResNet experiments</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
th {{ background: #f3f3f3; }}
td.ok {{ color: #176f2c; font-weight: bold; }}
td.failed {{ color: #b00020; font-weight: bold; }}
td.blocked {{ color: #8a5a00; font-weight: bold; }}
tr.error td {{ background: #fff0f0; font-family: monospace; }}
table.paper td:nth-child(5), table.paper td:nth-child(6) {{ font-weight: bold; }}
</style></head>
<body>
<h1>ResNet experiments</h1>
<p>{ok} of {total} runs complete, {failed} failed or not run, {blocked} blocked (inputs missing here).
Generated {when}. Table: <a href="results.csv">results.csv</a>.</p>
{sections}
</body></html>
"""
