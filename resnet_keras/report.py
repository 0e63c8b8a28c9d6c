"""Results of one run (written by the notebooks) and of a sweep (index and table)."""

import os
import time

from resnet_keras.files import write_json, write_text

RESULTS_FILE = "results.json"


def run_summary(history, test, model, **info):
    """The key figures of a finished run, as a flat dict for `results.json`.

    Args:
        history: DataFrame from `train` (one row per epoch).
        test: dict from `evaluate` (loss, accuracy).
        model: the trained model (for its name and parameter count).
        info: anything else to record (data set, optimizer, batch size, ...).
    """
    from resnet_keras.models import count_params

    summary = {
        "model": model.name,
        "params": count_params(model),
        "epochs_trained": int(len(history)),
        "final_train_accuracy": float(history["accuracy"].iloc[-1]),
        "test_accuracy": float(test["accuracy"]),
        "test_loss": float(test["loss"]),
        "train_time_s": round(float(history["time_s"].sum()), 1),
        **info,
    }
    if "val_accuracy" in history:
        summary["best_val_accuracy"] = float(history["val_accuracy"].max())
        summary["final_val_accuracy"] = float(history["val_accuracy"].iloc[-1])
        summary["train_val_gap"] = round(summary["final_train_accuracy"] - summary["final_val_accuracy"], 4)
    return summary


def write_run_results(out_dir, summary):
    """Write the run's `results.json`: the last thing a notebook does."""
    write_json(os.path.join(out_dir, RESULTS_FILE), summary)


# The sweep's summary: read every run's record once, at the end.

COLUMNS = ["question", "run", "status", "dataset", "model", "depth", "params", "optimizer", "batch_size", "epochs",
           "best_val_accuracy", "final_val_accuracy", "test_accuracy", "train_val_gap", "train_time_s", "elapsed_s",
           "weights", "seed", "error", "where", "report"]
LINKS = (("report", "report.html"), ("notebook", "notebook.ipynb"), ("model", "model.h5"), ("history", "history.csv"),
         ("curves", "curves.png"), ("confusion", "confusion.png"), ("metrics", "metrics.json"))


def results_table(outputs, runs, records):
    """One row per run (pandas DataFrame), in plan order."""
    import pandas as pd

    rows = []
    for run in runs:
        rec = records.get(run.key, {"status": "not run"})
        res = rec.get("results", {})
        report = os.path.join(run.question, run.name, "report.html")
        rows.append({"question": run.question, "run": run.name, "status": rec["status"],
                     "dataset": run.parameters.get("dataset", res.get("dataset")), "elapsed_s": rec.get("elapsed_s"),
                     "error": rec.get("error"), "where": rec.get("where"),
                     "report": report if os.path.isfile(os.path.join(outputs, report)) else None,
                     **{k: v for k, v in res.items() if k in COLUMNS and k != "dataset"}})
    table = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("depth", "params", "batch_size", "epochs", "seed"):
        table[col] = table[col].astype("Int64")  # integers, blank where a question has none
    return table


def write_summary(outputs, runs, records):
    """Write `results.csv`, a comparison plot per question and `index.html`; return the index path."""
    import html

    import pandas as pd

    from resnet_keras import plots

    table = results_table(outputs, runs, records)
    write_text(os.path.join(outputs, "results.csv"), table.to_csv(index=False))
    sections = []
    for question, group in table.groupby("question", sort=False):
        histories = {}
        for name in group.loc[group.status == "ok", "run"]:
            path = os.path.join(outputs, question, name, "history.csv")
            if os.path.isfile(path):
                histories[name] = pd.read_csv(path)
        figure = ""
        if histories:
            metric = "val_accuracy" if any("val_accuracy" in h for h in histories.values()) else "accuracy"
            fig = plots.plot_overlay(histories, metric, f"{question}: {metric} per epoch, all runs")
            plots.save_figure(fig, os.path.join(outputs, question, "comparison.png"))
            plots.plt.close(fig)
            figure = f'<img src="{question}/comparison.png" alt="{question} comparison" width="720">'
        sections.append(f"<h2>{html.escape(question)}</h2>\n{_html_table(outputs, group)}\n{figure}")
    ok = int((table.status == "ok").sum())
    page = _PAGE.format(ok=ok, failed=len(table) - ok, total=len(table), when=time.strftime("%Y-%m-%d %H:%M"),
                        sections="\n".join(sections))
    index = os.path.join(outputs, "index.html")
    write_text(index, page)
    return index


def _html_table(outputs, group):
    import html

    shown = ["run", "status", "dataset", "model", "params", "optimizer", "batch_size", "epochs", "best_val_accuracy",
             "final_val_accuracy", "test_accuracy", "train_time_s", "weights"]
    shown = [c for c in shown if group[c].notna().any()]
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in shown) + "<th>files</th>"
    body = []
    for _, row in group.iterrows():
        cells = []
        for c in shown:
            v = row[c]
            text = "" if v is None or v != v else (f"{v:.4f}" if isinstance(v, float) and c.endswith("accuracy")
                                                   else f"{v:,}" if c == "params" else str(v))
            cls = f' class="{row.status.replace(" ", "-")}"' if c == "status" else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        folder = os.path.join(row.question, row.run)
        links = [f'<a href="{folder}/{f}">{label}</a>' for label, f in LINKS
                 if os.path.isfile(os.path.join(outputs, folder, f))]
        cells.append(f"<td>{' '.join(links)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
        if row.status == "failed":
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
tr.error td {{ background: #fff0f0; font-family: monospace; }}
</style></head>
<body>
<h1>ResNet experiments</h1>
<p>{ok} of {total} runs complete, {failed} failed or not run. Generated {when}. Table: <a href="results.csv">results.csv</a>.</p>
{sections}
</body></html>
"""
