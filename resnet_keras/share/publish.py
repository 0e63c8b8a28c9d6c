"""Publish a finished run on the Hugging Face Hub: the model with its card, and a Space to try it.

    make publish RUN=paper/resnet-20-seed0 [REPO=user/name]
    python -m resnet_keras.share.publish paper/resnet-20-seed0 [--repo user/name] [--outputs outputs]

It writes the run's `hub/` folder (`outputs/<question>/<run>/hub/`), replacing
an earlier one only once the new one is complete:

    config.json, metadata.json, model.weights.h5
                     the model in Keras' native format, as `model.save(..., zipped=False)` writes it and
                     `keras.saving.load_model("hf://user/name")` reads it: RGB pixels (b, 32, 32, 3) in
                     [0, 255] in, probabilities out, the normalisation inside. Built of Keras' own layers
                     only, so loading it needs Keras and nothing of this package.
    labels.json      the class names, in the order of the outputs
    README.md        the model card: Hub metadata (library, tags, data set, metrics, model-index) and the
                     recipe, from the run's settings
    curves.png, confusion.png, history.csv
    space/           a Gradio Space: app.py, requirements.txt, README.md (its metadata), labels.json and the
                     run's example test images (`examples/`)

With `REPO` it uploads the folder to that model repository with
`huggingface_hub` (a token from `HF_TOKEN` or `hf auth login`). Without a token
or without network it says so in one line, leaves the folder, and exits 1.
"""

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile

from resnet_keras import products
from resnet_keras.errors import ConfigError
from resnet_keras.files import read_json_object, write_json

HUB = "hub"  # the folder, in the run's
SPACE = "space"
LABELS = "labels.json"
HUB_DATASETS = {"cifar10": "uoft-cs/cifar10", "cifar100": "uoft-cs/cifar100"}  # the data sets' Hub ids
COPIED = (products.CURVES, products.CONFUSION, products.HISTORY)


def write_folder(run_dir, repo=None):
    """Write `run_dir`'s `hub/` folder (see the module docstring); returns its path.

    `repo` ("user/name"), where given, is named in the card and is where the
    Space loads the model from; without it the Space loads the folder's own.
    """
    import keras

    from resnet_keras.files import load_h5
    from resnet_keras.models import channels_last, plain_keras_model

    run_dir = os.path.normpath(run_dir)
    results = read_json_object(os.path.join(run_dir, products.RESULTS))
    if not os.path.isfile(os.path.join(run_dir, products.MODEL)) or "test_accuracy" not in results:
        raise ConfigError(f"run {run_dir!r} has not finished: it needs {products.MODEL} and {products.RESULTS}; "
                          f"run it first (make sweep, or make run RUN=...)")
    settings = read_json_object(os.path.join(run_dir, products.RECORD)).get("settings", {})
    facts = {**settings, **results}
    # Channels last, whichever backend trained it or publishes it: every backend runs that layout.
    model = plain_keras_model(channels_last(load_h5(os.path.join(run_dir, products.MODEL))))
    classes = facts.get("class_names") or [f"class {i}" for i in range(model.output_shape[-1])]

    final = os.path.join(run_dir, HUB)
    for old in glob.glob(os.path.join(run_dir, f".{HUB}.tmp-*")):  # what a killed publish left
        shutil.rmtree(old, ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=f".{HUB}.tmp-", dir=run_dir)
    try:
        keras.saving.save_model(model, tmp, zipped=False)
        write_json(os.path.join(tmp, LABELS), classes)
        for name in COPIED:
            if os.path.isfile(os.path.join(run_dir, name)):
                shutil.copy(os.path.join(run_dir, name), tmp)
        _card(facts, classes, model, run_dir, repo).save(os.path.join(tmp, "README.md"))
        _write_space(os.path.join(tmp, SPACE), run_dir, facts, classes, repo)
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    return final


def upload(folder, repo, message):
    """Upload `folder` to the model repository `repo` (created if missing) with huggingface_hub; its URL."""
    import httpx2  # huggingface_hub's HTTP client: its transport errors are those of an unreachable Hub
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = get_token()  # HF_TOKEN, else the token `hf auth login` stored
    if not token:
        raise ConfigError(f"no Hugging Face token: set HF_TOKEN or run `hf auth login`; the folder is ready in "
                          f"{folder}")
    api = HfApi(token=token, library_name="resnet_keras")
    try:
        url = api.create_repo(repo_id=repo, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo, repo_type="model", folder_path=folder, commit_message=message)
    except (HfHubHTTPError, OSError, httpx2.TransportError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"the upload to {repo} failed ({first}); the folder is ready in {folder}") from None
    return str(url)


def _card(facts, classes, model, run_dir, repo):
    """The model card: `huggingface_hub.ModelCard` with Hub metadata, then what the run is and how it was made."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from resnet_keras.models import count_params
    from resnet_keras.report import DATASET_NAMES, paper_error

    dataset = facts.get("dataset", "cifar10")
    hub_dataset, dataset_name = HUB_DATASETS.get(dataset, dataset), DATASET_NAMES.get(dataset, dataset)
    name = facts.get("model") or model.name
    accuracy = float(facts["test_accuracy"])
    data = ModelCardData(
        library_name="keras", pipeline_tag="image-classification", model_name=name, datasets=[hub_dataset],
        metrics=["accuracy"], tags=["image-classification", "resnet", dataset, "resnet-keras"],
        eval_results=[EvalResult(task_type="image-classification", task_name="Image Classification",
                                 dataset_type=hub_dataset, dataset_name=dataset_name, dataset_split="test",
                                 metric_type="accuracy", metric_name="Test accuracy", metric_value=round(accuracy, 4))])
    height, width = model.input_shape[1:3]
    paper = paper_error(dataset, facts.get("family"), facts.get("depth"), facts.get("shortcut", "zero_pad"))
    load = f'keras.saving.load_model("hf://{repo}")' if repo else 'keras.saving.load_model("path/to/this/folder")'
    recipe = "\n".join(f"| `{k}` | `{json.dumps(facts[k])}` |" for k in sorted(facts) if k in RECIPE)
    lines = [
        f"# {name} on {dataset_name}",
        "",
        f"A {name} ({count_params(model):,} trainable parameters) trained on {dataset_name} by the resnet_keras "
        f"experiment suite, its run `{_run_key(run_dir)}`.",
        "",
        "| | test accuracy | test error |",
        "|---|---|---|",
        f"| this model | {accuracy:.4f} | {100 * (1 - accuracy):.2f}% |",
        *([f"| He et al. (2015), table 6 | {1 - paper / 100:.4f} | {paper:.2f}% |"] if paper is not None else []),
        "",
        "## Use",
        "",
        f"It takes RGB pixels `(batch, {height}, {width}, 3)` in [0, 255] (it normalises them itself) and outputs the "
        f"probabilities of the {len(classes)} classes, named in `{LABELS}` in order. "
        "Only Keras 3 is needed (any backend):",
        "",
        "```python",
        "import keras, numpy as np",
        f"model = {load}",
        f"probabilities = model.predict(np.zeros((1, {height}, {width}, 3), 'float32'))",
        "```",
        "",
        "`space/` holds a Gradio app for a Hugging Face Space: upload that folder to a Space "
        "(`hf upload --repo-type space user/name-demo space/`).",
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        recipe,
        "",
        *(f"![{caption}]({file})" for caption, file in (("learning curves", products.CURVES),
                                                          ("confusion matrix", products.CONFUSION))
          if os.path.isfile(os.path.join(run_dir, file))),
        "",
        f"`{products.HISTORY}` has every epoch's figures.",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


# What the card's recipe table shows, where the run recorded it.
RECIPE = ("family", "depth", "width", "version", "shortcut", "dataset", "epochs", "epochs_trained", "batch_size",
          "optimizer", "learning_rate", "momentum", "nesterov", "weight_decay", "schedule", "warmup_epochs",
          "augment", "validation_split", "seed", "precision", "backend", "device", "train_time_s")


def _write_space(folder, run_dir, facts, classes, repo):
    """A Gradio Space that classifies with the model: app.py, requirements.txt, its README.md card, examples."""
    from importlib.metadata import version

    import gradio
    import keras
    from huggingface_hub import SpaceCard, SpaceCardData

    os.makedirs(folder)
    write_json(os.path.join(folder, LABELS), classes)
    examples = os.path.join(run_dir, products.EXAMPLES)
    if os.path.isdir(examples):
        shutil.copytree(examples, os.path.join(folder, products.EXAMPLES))
    name = facts.get("model", "model")
    with open(os.path.join(folder, "app.py"), "w") as f:
        f.write(SPACE_APP.replace("{MODEL}", f"hf://{repo}" if repo else "..").replace("{TITLE}", name)
                .replace("{EXAMPLES}", products.EXAMPLES).replace("{LABELS}", LABELS))
    with open(os.path.join(folder, "requirements.txt"), "w") as f:
        f.write(f"keras=={keras.__version__}\ntensorflow-cpu=={version('tensorflow')}\n")
    card = SpaceCardData(title=f"{name} classifier", sdk="gradio", sdk_version=gradio.__version__,
                         app_file="app.py", models=[repo] if repo else None)
    SpaceCard(f"---\n{card.to_yaml()}\n---\n\nClassify an image with {name}.\n").save(
        os.path.join(folder, "README.md"))


SPACE_APP = '''"""{TITLE}: upload an image, see its five most likely classes (Gradio)."""

import glob
import json
import os

import gradio as gr
import keras
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
# The model: the published repository, or MODEL (a repository as hf://user/name, or a folder).
MODEL = os.environ.get("MODEL", "{MODEL}")
model = keras.saving.load_model(MODEL if MODEL.startswith("hf://") else os.path.join(HERE, MODEL))
with open(os.path.join(HERE, "{LABELS}")) as f:
    labels = json.load(f)


def classify(image):
    if image is None:
        raise gr.Error("no image yet: upload, paste or drop one")
    height, width = model.input_shape[1:3]
    x = np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS), dtype="float32")[None]
    probabilities = model.predict(x, verbose=0)[0]
    return {labels[i]: float(probabilities[i]) for i in np.argsort(probabilities)[::-1][:5]}


examples = sorted(glob.glob(os.path.join(HERE, "{EXAMPLES}", "*.png")))
demo = gr.Interface(classify, gr.Image(type="pil", label="Image"), gr.Label(num_top_classes=5, label="Top 5"),
                    examples=examples or None, title="{TITLE}", flagging_mode="never")

if __name__ == "__main__":
    demo.launch(server_name=os.environ.get("HOST", "127.0.0.1"), server_port=int(os.environ.get("PORT", "7860")))
'''


def _run_key(run_dir):
    return "/".join(os.path.normpath(run_dir).split(os.sep)[-2:])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m resnet_keras.share.publish", description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a finished run: question/run (as `make sweep` lists it) or its folder")
    ap.add_argument("--repo", help="upload to this Hugging Face model repository (user/name)")
    ap.add_argument("--outputs", default="outputs", help="the sweep's outputs folder (default: outputs)")
    args = ap.parse_args(argv)
    run_dir = args.run if os.path.isdir(args.run) else os.path.join(args.outputs, args.run)
    try:
        if args.repo is not None:
            _check_repo(args.repo)
        if not os.path.isdir(run_dir):
            raise ConfigError(f"run {args.run!r} has no folder {run_dir!r}; give question/run as `make sweep` "
                              f"lists it, e.g. paper/resnet-20-seed0")
        folder = write_folder(run_dir, args.repo)
    except ConfigError as e:
        print(f"publish: {e}", file=sys.stderr)
        return 2
    print(f"publish: wrote {folder}")
    if args.repo:
        try:
            print(f"publish: uploaded to {upload(folder, args.repo, f'{_run_key(run_dir)} from resnet_keras')}")
        except ConfigError as e:
            print(f"publish: {e}", file=sys.stderr)
            return 1
    return 0


def _check_repo(repo):
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
        ok = repo.count("/") == 1
    except HFValidationError:
        ok = False
    if not ok:
        raise ConfigError(f"REPO={repo!r} is not accepted; use a Hugging Face repository id user/name "
                          f"(letters, digits, '-', '_', '.')")


if __name__ == "__main__":
    sys.exit(main())
