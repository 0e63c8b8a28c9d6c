"""Figures for reports: learning curves, confusion matrices, overlays of runs."""

import matplotlib

matplotlib.use("Agg") if not matplotlib.get_backend().lower().startswith(("module://", "inline")) else None
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from resnet_keras.files import atomic_path  # noqa: E402


def plot_history(history, title=""):
    """Loss and accuracy (%) per epoch, train and validation, from a history DataFrame; whole epochs on the axis.

    A two-stage run's history (`train_transfer`: `attrs["head_epochs"]`) is
    marked where fine-tuning begins.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    head = history.attrs.get("head_epochs")
    for ax, metric in zip(axes, ("loss", "accuracy")):
        scale = 100 if metric == "accuracy" else 1
        for prefix, label, style in (("", "train", "-"), ("val_", "validation", "--")):
            if prefix + metric in history:
                ax.plot(history["epoch"], scale * history[prefix + metric], style, marker="o", ms=3, label=label)
        if head and head < len(history):
            mark_stage(ax, head)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)" if scale == 100 else "loss (cross-entropy)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(y_true, y_pred, class_names, title="Confusion matrix (test set)"):
    """Row-normalised confusion matrix in percent: each row is a true class and sums to 100.

    Up to 20 classes, the axes name the classes and each cell of 0.5% or more
    prints its rounded percentage (smaller ones are left blank, so no cell
    reads 0); with more, the matrix is drawn as an image only.
    """
    k = len(class_names)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    rates = 100 * counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 6 if k <= 20 else 9
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=100)
    if k <= 20:
        ax.set_xticks(range(k), class_names, rotation=60, ha="right")
        ax.set_yticks(range(k), class_names)
        for i in range(k):
            for j in range(k):
                if rates[i, j] >= 0.5:
                    ax.text(j, i, f"{rates[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 50 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="% of the true class")
    fig.tight_layout()
    return fig


METRIC_LABELS = {"accuracy": "train accuracy", "val_accuracy": "validation accuracy", "loss": "train loss",
                 "val_loss": "validation loss"}


def plot_overlay(histories, metric="val_accuracy", title="", stage=None):
    """One curve per run or per group of runs, against whole epochs.

    `histories` maps a label to a history DataFrame, or to a list of them (a
    configuration's seeds): a list is drawn as its mean per epoch with the
    range of its runs as a band, and the label says how many runs it has.
    Accuracies are drawn in percent. `stage`: the epoch after which
    fine-tuning begins, marked (Q3), or None.
    """
    percent = metric.endswith("accuracy")
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, runs in histories.items():
        runs = [h for h in (runs if isinstance(runs, list) else [runs]) if metric in h]
        if not runs:
            continue
        table = np.full((len(runs), max(int(h["epoch"].max()) for h in runs)), np.nan)
        for row, h in zip(table, runs):
            row[h["epoch"].to_numpy(int) - 1] = h[metric].to_numpy(float) * (100 if percent else 1)
        epochs = np.arange(1, table.shape[1] + 1)
        label = f"{name} ({len(runs)} seeds: mean and range)" if len(runs) > 1 else name
        line, = ax.plot(epochs, np.nanmean(table, axis=0), marker="o", ms=3, label=label)
        if len(runs) > 1:
            ax.fill_between(epochs, np.nanmin(table, axis=0), np.nanmax(table, axis=0), alpha=0.2,
                            color=line.get_color(), linewidth=0)
    if stage:
        mark_stage(ax, stage)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric) + (" (%)" if percent else ""))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if histories:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def mark_stage(ax, head_epochs):
    """A dashed line between the head's last epoch and fine-tuning's first, labelled."""
    ax.axvline(head_epochs + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.annotate("fine-tuning", (head_epochs + 0.5, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                textcoords="offset points", fontsize=8, color="grey")


def save_figure(fig, path):
    """Write `fig` as PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def network_label(family, depth=None):
    """How the paper names a CIFAR network: "ResNet-20", "plain-20" (without depth: "ResNet", "plain")."""
    name = "plain" if family == "plain" else "ResNet"
    return name if depth is None else f"{name}-{depth}"


def plot_error_vs_depth(measured, paper=None, title="CIFAR-10 test error against depth"):
    """Test error (%) against depth: `measured` maps a label ("ResNet", "plain") to {depth: error, or the
    errors of several seeds}, drawn as the mean with a bar of +- one standard deviation and each seed as a
    dot; `paper` is {depth: error} of the reference, drawn as crosses."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in measured.items():
        depths = sorted(points)
        errors = [np.atleast_1d(points[d]).astype(float) for d in depths]
        seeds = max(len(e) for e in errors)
        spread = [e.std(ddof=1) if len(e) > 1 else 0.0 for e in errors]
        note = f", up to {seeds} seeds" if seeds > 1 else ""
        line = ax.errorbar(depths, [e.mean() for e in errors], yerr=spread, marker="o", capsize=4,
                           label=f"{label} (this suite{note})")
        if seeds > 1:
            ax.scatter([d for d, e in zip(depths, errors) for _ in e], np.concatenate(errors), s=10, alpha=0.5,
                       color=line[0].get_color())
    if paper:
        depths = sorted(paper)
        ax.plot(depths, [paper[d] for d in depths], "x--", color="black", label="ResNet (paper)")
    ax.set_xlabel("depth (weight layers)")
    ax.set_ylabel("test error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_plain_vs_residual(curves, title="Plain (left) against residual (right) networks"):
    """The paper's figure 6: training error (dashed) and validation error (bold) per epoch.

    `curves` maps (family, depth) to a history DataFrame; family is "plain" or "resnet".
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    depths = sorted({d for _, d in curves})
    colors = dict(zip(depths, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4))
    for ax, family in zip(axes, ("plain", "resnet")):
        for (fam, depth), h in sorted(curves.items()):
            if fam != family:
                continue
            name = network_label(fam, depth)
            ax.plot(h["epoch"], 100 * (1 - h["accuracy"]), "--", lw=1, color=colors[depth],
                    label=None if "val_accuracy" in h else name)
            if "val_accuracy" in h:
                ax.plot(h["epoch"], 100 * (1 - h["val_accuracy"]), "-", marker="o", ms=3, lw=2.2, color=colors[depth],
                        label=name)
        ax.set_title(f"{'plain' if family == 'plain' else 'residual'} networks")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%): dashed train, bold validation")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_against_reference(pairs, title="Runs over the reference runs"):
    """Error (%) per epoch of each run (solid) over its reference runs (dashed, one per seed).

    `pairs` maps a run's name to (its history, [histories of its references]).
    Validation error where every curve has it, else training error.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    histories = [h for own, refs in pairs.values() for h in (own, *refs)]
    metric = "val_accuracy" if all("val_accuracy" in h for h in histories) else "accuracy"
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, (own, refs)), color in zip(sorted(pairs.items()), colors * 4):
        for i, ref in enumerate(refs):
            ax.plot(ref["epoch"], 100 * (1 - ref[metric]), "--", lw=1, alpha=0.7, color=color,
                    label=f"{name}: reference ({len(refs)} run{'s' * (len(refs) > 1)})" if i == 0 else None)
        ax.plot(own["epoch"], 100 * (1 - own[metric]), "-", marker="o", ms=3, lw=2, color=color, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{'validation' if metric == 'val_accuracy' else 'training'} error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_time(points, title="Test accuracy against training time per epoch"):
    """One labelled point per network: `points` maps a name to (seconds per epoch, accuracy, params)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, (seconds, accuracy, params) in points.items():
        ax.scatter(seconds, accuracy, s=30 + 200 * params / max(p for _, _, p in points.values()), alpha=0.7)
        ax.annotate(f"{name} ({params / 1e6:.2f}M)", (seconds, accuracy), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training time per epoch (s, log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
