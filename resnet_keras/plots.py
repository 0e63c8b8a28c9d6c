"""Figures for reports: learning curves, confusion matrices, overlays of runs."""

import matplotlib

matplotlib.use("Agg") if not matplotlib.get_backend().lower().startswith(("module://", "inline")) else None
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from resnet_keras.files import atomic_path  # noqa: E402


def plot_history(history, title=""):
    """Loss and accuracy per epoch, train and validation, from a history DataFrame."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, label, style in (("", "train", "-"), ("val_", "validation", "--")):
            if prefix + metric in history:
                ax.plot(history["epoch"], history[prefix + metric], style, marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(y_true, y_pred, class_names, title="Confusion matrix (test set)"):
    """Row-normalised confusion matrix; class names on the axes up to 20 classes."""
    k = len(class_names)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 6 if k <= 20 else 9
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:
        ax.set_xticks(range(k), class_names, rotation=60, ha="right")
        ax.set_yticks(range(k), class_names)
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_overlay(histories, metric="val_accuracy", title=""):
    """One curve per run: `histories` maps a run name to its history DataFrame."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, h in histories.items():
        if metric in h:
            ax.plot(h["epoch"], h[metric], marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if histories:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig, path):
    """Write `fig` as PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
