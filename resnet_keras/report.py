"""The results of one run, as its notebook writes them, and the paper's figures to compare them with.

Notebooks end with `finish`, which writes the run's products (`products.py`).
The sweep's summary of all runs is `summary/index.py`."""

import os
import time

from resnet_keras import products
from resnet_keras.errors import check_choice
from resnet_keras.files import executed_modules, read_json_object, write_json, write_text

_STARTED = time.monotonic()  # imported by a notebook's first cell: its wall time counts from here

# He et al. (2015), table 6: CIFAR-10 test error (%) of ResNets with option-A
# shortcuts, trained 64k iterations with the step schedule.
PAPER_CIFAR10_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}


def paper_error(dataset, family, depth, shortcut="zero_pad"):
    """The paper's CIFAR-10 test error (%) for this network, or None if the table has none."""
    if dataset == "cifar10" and family == "resnet" and shortcut == "zero_pad":
        return PAPER_CIFAR10_ERROR.get(depth)
    return None


def note(markdown):
    """Show `markdown` in the notebook's output, rendered; print it where nothing renders it (`sweep/script.py`)."""
    from IPython import get_ipython

    if get_ipython() is None:
        print(markdown)
        return
    from IPython.display import Markdown, display

    display(Markdown(markdown))


def best_epoch(history):
    """The epoch of highest validation accuracy, the first if several tie: the one `RunCheckpoint` kept."""
    return int(history["epoch"].iloc[int(history["val_accuracy"].to_numpy().argmax())])


def run_summary(history, test, model, best=None, **info):
    """The key figures of a finished run, as a flat dict for `results.json`.

    Args:
        history: DataFrame from `train` (one row per epoch).
        test: dict from `evaluate` (loss, accuracy): the last epoch's model.
        model: the trained model (for its name and parameter count).
        best: dict from `evaluate_best`, the best-validation model on the
            test set, or None: recorded as `best_test_accuracy`,
            `best_test_loss` and `best_epoch`.
        info: anything else to record (data set, optimizer, batch size, ...).
    """
    from resnet_keras.models import count_params

    # A two-stage run (Q3: the head, then fine-tuning) has two kinds of epoch, timed apart.
    head = history.attrs.get("head_epochs") or len(history)
    summary = {
        "model": model.name,
        "params": count_params(model),
        "epochs_trained": int(len(history)),
        "epoch_time_s": _median_epoch(history["time_s"].iloc[:head]),
        **({"fine_tune_epoch_time_s": _median_epoch(history["time_s"].iloc[head:])} if head < len(history) else {}),
        "final_train_accuracy": float(history["accuracy"].iloc[-1]),
        "test_accuracy": float(test["accuracy"]),
        "test_loss": float(test["loss"]),
        "train_time_s": round(float(history["time_s"].sum()), 1),
        **info,
    }
    if history.attrs.get("replayed"):  # a redrawn report's notebook trained nothing: its epochs ran elsewhere
        summary["trained_on"] = history.attrs.get("trained_on")
        summary["recorded_test_accuracy"] = history.attrs.get("recorded_test_accuracy")
    else:
        summary["wall_time_s"] = round(time.monotonic() - _STARTED, 1)
    if "val_accuracy" in history:
        summary["best_val_accuracy"] = float(history["val_accuracy"].max())
        summary["final_val_accuracy"] = float(history["val_accuracy"].iloc[-1])
        summary["train_val_gap"] = round(summary["final_train_accuracy"] - summary["final_val_accuracy"], 4)
        if best is not None:
            summary["best_epoch"] = best_epoch(history)
            summary["best_test_accuracy"] = float(best["accuracy"])
            summary["best_test_loss"] = float(best["loss"])
    return summary


def finish(out_dir, model, history, test, figures=None, data=None, best=None, **info):
    """End a run: write its figures, history, model and example images, and last its `results.json`.

    Args:
        out_dir: the run's folder.
        model: the trained model, saved as `model.h5`.
        history: every epoch's row (a DataFrame from `train`; the transfer
            notebook joins its two stages), saved as `history.csv`.
        test: the dict from `evaluate` on the test set; its predicted
            classes are saved as `predictions.npy`.
        best: the dict from `evaluate_best` (the best-validation model on the
            test set), or None.
        figures: {"curves": figure, "confusion": figure}, by the names of
            `products.FIGURES` ("curves" at least: the index shows it).
        data: the run's `CifarData`: its class names go into `results.json`,
            and a few of its test images into `examples/` (the demo's and a
            published model's Space's examples).
        info: what else `results.json` records (data set, optimizer, ...).
    Returns:
        the dict written to `results.json` (`run_summary`, with the backend,
        the device and the modules executed), after showing its key figures
        as a table (`figures_table`): the end of the run's report.
    """
    from resnet_keras.files import save_h5, save_predictions
    from resnet_keras.plots import save_figure

    figures = figures or {}
    for name in figures:
        check_choice("figure", name, tuple(products.FIGURES))
    if data is not None:
        info.setdefault("class_names", list(data.class_names))
    summary = run_summary(history, test, model, best, **info)
    for name, fig in figures.items():
        save_figure(fig, os.path.join(out_dir, products.FIGURES[name]))
    write_text(os.path.join(out_dir, products.HISTORY), history.to_csv(index=False))
    save_h5(model, os.path.join(out_dir, products.MODEL))
    if "predictions" in test:
        save_predictions(os.path.join(out_dir, products.PREDICTIONS), test["predictions"])
    if data is not None:
        write_examples(os.path.join(out_dir, products.EXAMPLES), data.x_test, data.y_test, data.class_names)
    results = write_run_results(out_dir, summary)
    note(figures_table(results))
    return results


NETWORK_NAMES = (("preact_resnet", "pre-activation ResNet-"), ("resnet", "ResNet-"), ("plain", "plain-"))
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop"}


def network_name(model_name):
    """How a report names the network of a model built by the package ("resnet20" -> "ResNet-20",
    "preact_resnet44" -> "pre-activation ResNet-44"); other names unchanged."""
    for prefix, name in NETWORK_NAMES:
        if model_name.startswith(prefix) and model_name[len(prefix):].isdigit():
            return name + model_name[len(prefix):]
    return model_name


def title(question, model_name, dataset, what="trained from scratch"):
    """Show the report's title, naming the network and the data set: a notebook's first output.

    Args:
        question: "Q1", ...
        model_name: the name of the model the run builds (`models.resnet_name`).
        dataset: "cifar10" or "cifar100".
        what: how the network is trained.

    The title reads, e.g., "Q1: a ResNet-8 trained from scratch on CIFAR-10".
    """
    note(f"# {question}: a {network_name(model_name)} {what} on {DATASET_NAMES.get(dataset, dataset)}")


SHORTCUT_NAMES = {"projection": "projection (1x1 convolution and batch norm) where the shape changes, identity "
                                  "elsewhere (the paper's option B)",
                  "zero_pad": "identity, subsampled and zero-padded where the shape changes, no parameters (the "
                                "paper's option A)"}
SCHEDULE_NAMES = {"constant": "constant", "step": "x0.1 at 50% and 75% of the epochs", "cosine": "cosine to 0"}


def figure_title(model_name, dataset, optimizer=None, batch_size=None):
    """A figure's title naming the run: "ResNet-20, Adam, batch 128, CIFAR-10"."""
    parts = [network_name(model_name), OPTIMIZER_NAMES.get(optimizer, optimizer) if optimizer else None,
             f"batch {batch_size}" if batch_size else None, DATASET_NAMES.get(dataset, dataset)]
    return ", ".join(p for p in parts if p)


def setup_table(model, data, *, dataset, optimizer, learning_rate, batch_size, epochs, weight_decay, augment,
                precision, seed, schedule="constant", warmup_epochs=0, momentum=0.9, nesterov=False,
                shortcut="projection", plain=False, dropout=0.0, version="v1", out_dir=None, network=None,
                extra=()):
    """The run's setup as a Markdown table, the first thing a report shows: network, recipe, data, machine.

    Args:
        model: the built model (its name and trainable parameters).
        data: the run's `CifarData` (the size of each split).
        network: how to name the network, where its model's name does not
            say it (the transfer model); its shortcuts are then not listed.
        extra: more (setting, value) rows, after the epochs.
        out_dir: the run's folder: where it holds a committed run's
            `run.json` (a report redrawn by `train(replay=True)`), the table
            names the machine that trained it.
        the rest: the notebook's parameters of the same names; `precision`
            as `set_precision` resolved it.
    """
    import keras

    from resnet_keras.devices import describe
    from resnet_keras.models import count_params

    name = network or network_name(model.name)
    if version == "v2" and not name.startswith("pre-activation"):
        name = f"pre-activation {name}"
    rate = f"{learning_rate:g}, {SCHEDULE_NAMES.get(schedule, schedule)}"
    if warmup_epochs:
        rate += f", after {warmup_epochs} warm-up epoch{'s' if warmup_epochs > 1 else ''}"
    opt = OPTIMIZER_NAMES.get(optimizer, optimizer)
    if optimizer == "sgd":
        opt += f" with {'Nesterov ' if nesterov else ''}momentum {momentum:g}"
    held_out = len(data.y_val) / max(len(data.y_train) + len(data.y_val), 1)
    split = (f"{len(data.y_train):,} train, {len(data.y_val):,} validation ({100 * held_out:.0f}% of each class, "
             f"held out), {len(data.y_test):,} test images; {data.num_classes} classes")
    rows = [("network", name + (", no shortcuts (plain)" if plain else "")),
            ("shortcuts", None if plain or network else SHORTCUT_NAMES.get(shortcut, shortcut)),
            ("trainable parameters", f"{count_params(model):,}"),
            ("optimizer", opt), ("learning rate", rate), ("batch", f"{batch_size} images"),
            ("weight decay", f"{weight_decay:g} (L2 on every weight)" if weight_decay else "none"),
            ("dropout", f"{dropout:g} before the classifier" if dropout else None),
            ("epochs", str(epochs)), *extra,
            ("augmentation", "pad 4 pixels, random 32x32 crop, random horizontal flip" if augment else "none"),
            ("data", f"{DATASET_NAMES.get(dataset, dataset)}: {split}"),
            ("precision", precision), ("seed", str(seed))]
    here = f"{describe()}; Keras {keras.__version__} on {keras.backend.backend()}"
    trained = read_json_object(os.path.join(out_dir, products.REFERENCE)).get("provenance") if out_dir else None
    if trained:  # a committed run's report, redrawn from its history and model (`train(replay=True)`)
        rows += [("trained on", f"{trained.get('device')}; {trained.get('backend')}, {trained.get('precision')}; "
                                f"commit {trained.get('commit')}, finished {trained.get('finished')}"),
                 ("this report redrawn on", f"{here}, from the run's history and model, without training")]
    else:
        rows.append(("computed on", here))
    return "\n".join(["| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows if v is not None])


def training_log(history):
    """Every epoch of the run as a Markdown table, a resumed run's earlier epochs included and marked.

    `history`: `train`'s DataFrame; its `attrs["resumed_after"]` (set by
    `train`) is the number of epochs an earlier attempt had committed.
    """
    resumed = history.attrs.get("resumed_after", 0)
    has_val = "val_accuracy" in history
    head = "| epoch | train loss | train accuracy |" + (" validation loss | validation accuracy |" if has_val else "")
    head += " learning rate | seconds |"
    lines = [head, "|" + "---|" * head.count(" |")]
    for _, row in history.iterrows():
        cells = [f"{int(row['epoch'])}", f"{row['loss']:.4f}", f"{100 * row['accuracy']:.2f}%"]
        if has_val:
            cells += [f"{row['val_loss']:.4f}", f"{100 * row['val_accuracy']:.2f}%"]
        cells += [f"{row['lr']:.3g}", f"{row['time_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
        if resumed and int(row["epoch"]) == resumed and resumed < len(history):
            lines.append(f"| resumed here: epochs 1-{resumed} were trained by an earlier attempt, which was "
                         f"interrupted; this attempt restored their state and trained the rest |" + " |" * (
                             head.count(" |") - 1))
    return "\n".join(lines)


def findings(history, test, best=None):
    """"What this run shows": a paragraph computed from the run's own figures, so it cannot disagree with them.

    Where validation accuracy peaked (for a run that fine-tunes, what the
    head reached and what fine-tuning changed), the final gap between train and
    validation accuracy, whether validation accuracy was still rising over
    the last five epochs (a least-squares slope above 0.2 points an epoch),
    and the test accuracy of the last epoch's and the best-validation model.
    """
    import numpy as np

    n = len(history)
    last_train = 100 * history["accuracy"].iloc[-1]
    out = []
    if "val_accuracy" in history:
        val = 100 * history["val_accuracy"].to_numpy(float)
        out.append(f"Validation accuracy peaked at {val.max():.2f}% in epoch {best_epoch(history)} of "
                   f"{n} and ended at {val[-1]:.2f}%.")
        head = history.attrs.get("head_epochs")
        if head and head < n:  # a two-stage run (Q3): what the head reached, and what fine-tuning added
            tuned = n - head
            out.append(f"With the base frozen, the head reached {val[head - 1]:.2f}% validation accuracy in its "
                       f"{head} epochs; {tuned} epoch{'s' if tuned > 1 else ''} of fine-tuning changed that by "
                       f"{val[-1] - val[head - 1]:+.2f} points.")
        gap = last_train - val[-1]
        out.append(f"In the last epoch the network classified {last_train:.2f}% of its (augmented) training images "
                   f"right, {abs(gap):.2f} points {'above' if gap >= 0 else 'below'} validation"
                   + (": it fits its training set better than unseen images." if gap >= 2 else "."))
        tail = val[-5:]
        if len(tail) >= 3:
            slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0])
            trend = (f"still rising, by about {slope:.2f} points an epoch: more epochs would likely help"
                     if slope > 0.2 else f"no longer rising ({slope:+.2f} points an epoch)")
            out.append(f"Over the last {len(tail)} epochs it averaged {tail.mean():.2f}% (from {tail.min():.2f} "
                       f"to {tail.max():.2f}%), {trend}.")
    else:
        out.append(f"In the last epoch the network classified {last_train:.2f}% of its training images right.")
    sentence = f"On the test set the last epoch's model scored {100 * test['accuracy']:.2f}%"
    if best is not None and "val_accuracy" in history:
        sentence += f", the best-validation model (epoch {best_epoch(history)}) {100 * best['accuracy']:.2f}%"
    out.append(sentence + f" (test loss {test['loss']:.3f}).")
    return "**What this run shows.** " + " ".join(out)


def figures_table(results):
    """The run's figures as a Markdown table: what a reader of the report looks for first.

    `results`: `results.json`'s dict. Rows it has no figure for are left out.
    """
    def pct(key):
        return f"{100 * results[key]:.2f}%" if results.get(key) is not None else None

    machine = results.get("trained_on") or ", ".join(str(results[k]) for k in ("device", "backend", "precision")
                                                     if results.get(k))
    per_epoch = results.get("epoch_time_s")
    tuned = "fine_tune_epoch_time_s" in results
    best_epoch = results.get("best_epoch")
    rows = [("test accuracy (last epoch's model)", pct("test_accuracy")),
            ("the same, recorded where it trained (redrawn report)", pct("recorded_test_accuracy")),
            ("test loss (last epoch's model)", f"{results['test_loss']:.4f}" if "test_loss" in results else None),
            (f"test accuracy of the best-validation model (epoch {best_epoch})", pct("best_test_accuracy")),
            ("best validation accuracy", pct("best_val_accuracy")),
            ("final validation accuracy", pct("final_val_accuracy")),
            ("network", network_name(results["model"]) if results.get("model") else None),
            (f"trainable parameters{' in fine-tuning' if tuned else ''}",
             f"{results['params']:,}" if results.get("params") is not None else None),
            ("epochs", results.get("epochs_trained")),
            (f"time per epoch{' of the head' if tuned else ''} (median of epochs 2 onward)",
             f"{per_epoch:,.1f} s on {machine}" if per_epoch is not None else None),
            ("time per epoch of fine-tuning (median of its epochs 2 onward)",
             f"{results['fine_tune_epoch_time_s']:,.1f} s on {machine}" if tuned else None),
            ("training time (all epochs, earlier attempts' included)", _duration(results.get("train_time_s"))),
            ("wall time of this attempt (data, training, evaluation, saving)", _duration(results.get("wall_time_s")))]
    lines = ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows if v is not None]
    return "\n".join(lines)


def _median_epoch(times):
    """The median epoch time; the first epoch, which includes compilation, left out when there are others."""
    return round(float((times.iloc[1:] if len(times) > 1 else times).median()), 2)


def _duration(seconds):
    if seconds is None:
        return None
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{s:02d}s"


def write_examples(folder, x, y, class_names, count=8):
    """Write the first test image of each of the first `count` classes met as `folder/<nn>-<class>.png`.

    Returns the paths written. Earlier examples in `folder` are replaced.
    """
    from PIL import Image

    from resnet_keras.files import atomic_path

    firsts = {}
    for i, label in enumerate(y):
        firsts.setdefault(int(label), i)
        if len(firsts) == count:
            break
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):
        if old.endswith(".png"):
            os.remove(os.path.join(folder, old))
    paths = []
    for n, (label, i) in enumerate(firsts.items()):
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(class_names[label]))
        paths.append(os.path.join(folder, f"{n:02d}-{name}.png"))
        with atomic_path(paths[-1]) as tmp:
            Image.fromarray(x[i]).save(tmp, format="PNG")
    return paths


def read_examples(folder):
    """The images `write_examples` wrote into `folder`, as [(path, class name)] in their order; [] if none."""
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png")) if os.path.isdir(folder) else []
    return [(os.path.join(folder, n), n[:-len(".png")].partition("-")[2]) for n in names]


def write_run_results(out_dir, summary):
    """Write the run's `results.json`, the last thing a notebook does, and return what it holds.

    It records the Keras backend the run computed on ("backend"), the hardware
    (`devices.describe`: "device"; the CPU's vector flags, `devices.cpu_flags`:
    "cpu_flags", which decide its speed), and lists the
    package modules the run executed ("modules"), so that the sweep hashes
    exactly the code a run's results depend on: editing a module that no run
    imports (the web app, the sweep's index) invalidates none.
    """
    import keras

    from resnet_keras.devices import cpu_flags, describe

    results = {**summary, "backend": keras.backend.backend(), "device": describe(), "cpu_flags": cpu_flags(),
               "modules": executed_modules()}
    write_json(os.path.join(out_dir, products.RESULTS), results)
    return results
