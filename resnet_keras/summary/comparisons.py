"""Cross-run comparisons, named in a params file's `compare` list (`catalog.COMPARISONS`): drawn on the sweep's
index (`index.py`) and, from the committed reference runs, into `results/` (`reference.py`).

Each takes the question's successful runs ({run: its settings and results, `index.run_facts`},
{run: history DataFrame}) and returns HTML for the index, writing its files beside the runs.
"""

import os

from resnet_keras import products
from resnet_keras.files import write_text
from resnet_keras.report import PAPER_CIFAR10_ERROR, paper_error


def figure_html(outputs, question, file, fig):
    """Save `fig` as outputs/<question>/<file>; return its <img> tag for the index."""
    from resnet_keras import plots

    plots.save_figure(fig, os.path.join(outputs, question, file))
    plots.plt.close(fig)
    return f'<img src="{question}/{file}" alt="{question}: {file}" width="720">'


def paper_table(outputs, question, results, histories):
    """The paper's CIFAR-10 table next to ours, as HTML and `paper_table.csv`, and error against depth.

    One row per network (family and depth), over the seeds it was run with:
    the mean test error, its sample standard deviation and the best seed, as
    the paper reports its ResNet-110 (mean +- std and best of 5 runs).
    """
    import html

    import pandas as pd

    from resnet_keras import plots

    runs = [{"family": r["family"], "depth": r["depth"], "params": r["params"], "epochs": r.get("epochs_trained"),
             "seed": r.get("seed"), "error": 100 * (1 - r["test_accuracy"]), "run": name,
             "paper": paper_error(r.get("dataset"), r["family"], r.get("depth"), r.get("shortcut", "zero_pad"))}
            for name, r in results.items() if r.get("family") in ("resnet", "plain")]
    if not runs:
        return ""
    df = aggregate_seeds(pd.DataFrame(runs))
    write_text(os.path.join(outputs, question, "paper_table.csv"), df.to_csv(index=False))
    measured = {}
    for family, part in pd.DataFrame(runs).groupby("family"):
        measured[plots.network_label(family)] = part.groupby("depth")["error"].apply(list).to_dict()
    fig = plots.plot_error_vs_depth(measured, PAPER_CIFAR10_ERROR)
    shown = df.drop(columns="family")
    shown["runs"] = [" ".join(f'<a href="{html.escape(question)}/{html.escape(run)}/{products.REPORT}">'
                              f"{html.escape(run)}</a>" for run in names.split(";")) for names in shown["runs"]]
    return ("<h3>Against the ResNet paper (CIFAR-10, table 6)</h3>\n"
            + shown.to_html(index=False, na_rep="", classes="paper", border=0, escape=False)
            + f'\n<p><a href="{question}/paper_table.csv">paper_table.csv</a></p>\n'
            + figure_html(outputs, question, "error_vs_depth.png", fig))


def aggregate_seeds(runs):
    """One row per network from one row per run (DataFrame: family, depth, params, epochs, seed, error in %,
    run, paper): the seeds, the mean error, its sample standard deviation (blank for one seed), the best seed's
    error, the paper's and the mean's difference to it, all rounded to 0.01, and the runs (";"-separated)."""
    import pandas as pd

    from resnet_keras import plots

    rows = []
    for (family, depth), part in runs.sort_values("seed", na_position="first").groupby(["family", "depth"]):
        mean, paper = part["error"].mean(), part["paper"].iloc[0]
        rows.append({"network": plots.network_label(family, depth), "family": family, "depth": depth,
                     "params": part["params"].iloc[0], "epochs": part["epochs"].iloc[0], "seeds": len(part),
                     "test error (%)": round(mean, 2),
                     "std (points)": round(part["error"].std(), 2) if len(part) > 1 else None,
                     "best (%)": round(part["error"].min(), 2), "paper (%)": paper,
                     "difference (points)": None if pd.isna(paper) else round(mean - paper, 2),
                     "runs": ";".join(part["run"])})
    return pd.DataFrame(rows).sort_values(["family", "depth"], ascending=[False, True])


def plain_vs_residual(outputs, question, results, histories):
    """Training and validation error of plain and residual networks side by side (the paper's figure 6),
    one seed (the lowest) per network."""
    from resnet_keras import plots

    curves = {}  # one seed per network: the lowest
    for name, r in sorted(results.items(), key=lambda item: -(item[1].get("seed") or 0)):
        if r.get("family") in ("plain", "resnet") and name in histories:
            curves[r["family"], r["depth"]] = histories[name]
    if not curves:
        return ""
    return ("<h3>Plain against residual networks (the paper's figure 6)</h3>\n"
            + figure_html(outputs, question, "plain_vs_residual.png", plots.plot_plain_vs_residual(curves)))


def accuracy_vs_time(outputs, question, results, histories):
    """Test accuracy against training time per epoch, one point per network."""
    from resnet_keras import plots

    points = {r["model"]: (r["epoch_time_s"], r["test_accuracy"], r["params"]) for r in results.values()
              if r.get("epoch_time_s")}
    if not points:
        return ""
    return ("<h3>Accuracy against training time</h3>\n"
            + figure_html(outputs, question, "accuracy_vs_time.png", plots.plot_accuracy_vs_time(points)))


DRAW = {"paper_table": paper_table, "plain_vs_residual": plain_vs_residual, "accuracy_vs_time": accuracy_vs_time}
