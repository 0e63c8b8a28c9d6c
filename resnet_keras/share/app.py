"""A Gradio demo that classifies an image with any trained model: the user's in `outputs/`, then the committed ones.

    make app                                   # http://127.0.0.1:8000/
    python -m resnet_keras.share.app --outputs outputs --results results --port 8000 [--host 0.0.0.0] [--share]

Pick a model (every `model.h5` under the outputs folder, then every committed
reference model under `results/`, with the data set and test accuracy its run
recorded; the most accurate is chosen when the page opens), upload, paste or drop an image (any format
Pillow reads; it is resized to the model's 32x32 input) or click one of the
test images of the model's data set that its run wrote (`examples/`), and the
page shows the five most likely classes with their probabilities. Class names
come from the run's `results.json`; the model runs folded for inference
(`inference_model`), loaded in safe mode, one at a time. `--share` asks Gradio
for a public link (it needs internet). Gradio also serves its API: the
`classify` endpoint takes (model id, image) and answers the top 5.
"""

import argparse
import io
import os
import sys
import threading

from resnet_keras import products
from resnet_keras.errors import ConfigError
from resnet_keras.files import read_json_object
from resnet_keras.report import read_examples

MAX_UPLOAD = "20mb"  # Gradio refuses larger files


def find_models(outputs, results=None):
    """Every trained `model.h5` under `outputs`, then under `results`, as {id: info}.

    The id is the run folder relative to `outputs` ("q1/cifar10-resnet20-adam-seed0"),
    or "results/" and the folder relative to `results` for a committed reference
    run (`summary.reference`), whose `run.json` tells its data set and figures.
    Hidden folders (resume state, the smoke profile's data) are skipped; a
    folder that does not exist holds none.
    """
    models = _find(outputs, "")
    if results:
        models.update(_find(results, "results/"))
    return models


def _find(outputs, prefix):
    from resnet_keras.summary.reference import RUN_FILE

    models = {}
    for folder, dirs, files in os.walk(outputs):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if products.MODEL not in files:
            continue
        run_id = prefix + os.path.relpath(folder, outputs).replace(os.sep, "/")
        # The run's settings (its data set) from the sweep's record, then what the run measured.
        committed = read_json_object(os.path.join(folder, RUN_FILE))
        info = {**read_json_object(os.path.join(folder, products.RECORD)).get("settings", {}),
                **read_json_object(os.path.join(folder, products.RESULTS)),
                **committed.get("settings", {}), **committed.get("results", {})}
        models[run_id] = {"id": run_id, "path": os.path.join(folder, products.MODEL), "dataset": info.get("dataset"),
                          "model": info.get("model"), "test_accuracy": info.get("test_accuracy"),
                          "class_names": info.get("class_names"),
                          "example_images": read_examples(os.path.join(folder, products.EXAMPLES))}
    return models


def most_accurate(models):
    """The id of the model with the highest recorded test accuracy (the first of equals), or None if none."""
    return max(models, key=lambda i: models[i].get("test_accuracy") or -1.0, default=None)


def read_image(image, size):
    """An image (encoded bytes: PNG, JPEG, ...; or a PIL image) as float32 (1, h, w, 3) RGB pixels in [0, 255]."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(image, bytes):
            image = Image.open(io.BytesIO(image))
        image = image.convert("RGB").resize((size[1], size[0]), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, ValueError, AttributeError):
        what = f"({len(image):,} bytes) " if isinstance(image, bytes) else ""
        raise ConfigError(f"the upload {what}is not an image Pillow can read; use PNG, JPEG, BMP, GIF or WebP") \
            from None
    return np.asarray(image, dtype=np.float32)[None]


def top_k(probabilities, class_names, k=5):
    """The k most likely classes as [{"class": name, "probability": p}, ...], most likely first."""
    import numpy as np

    order = np.argsort(probabilities)[::-1][:k]
    names = class_names or [f"class {i}" for i in range(len(probabilities))]
    return [{"class": names[i], "probability": round(float(probabilities[i]), 6)} for i in order]


class Classifier:
    """Loads models on first use (safe mode) and keeps them; safe to call from several threads."""

    def __init__(self, outputs, results=None):
        self.outputs, self.results = outputs, results
        self._models = {}
        self._lock = threading.Lock()

    def available(self):
        return find_models(self.outputs, self.results)

    def predict(self, run_id, image, k=5):
        models = self.available()
        if run_id not in models:
            accepted = ", ".join(sorted(models)) or f"none: no model.h5 under {self.outputs!r} yet (run make sweep)"
            raise ConfigError(f"model={run_id!r} is not accepted; use one of {accepted}")
        info = models[run_id]
        with self._lock:
            key = (info["path"], os.path.getmtime(info["path"]))
            if key not in self._models:
                from resnet_keras.files import load_h5
                from resnet_keras.inference import inference_model

                self._models = {key: inference_model(load_h5(info["path"]))}  # one at a time: models can be large
            model = self._models[key]
            x = read_image(image, model.input_shape[1:3])
            probabilities = model.predict_on_batch(x)[0]
        return top_k(probabilities, info["class_names"], k)


def build_demo(outputs="outputs", results=None):
    """The Gradio app (a `gr.Blocks`, not launched) over the models of `outputs`, then the committed ones of
    `results`; the most accurate is chosen when the page opens."""
    import gradio as gr

    if not os.path.isdir(outputs) and not (results and os.path.isdir(results)):
        raise ConfigError(f"outputs={outputs!r} is not a folder; run `make sweep` first or pass --outputs")
    classifier = Classifier(outputs, results)

    def choices(models=None):
        return [(_describe(m), run_id) for run_id, m in (classifier.available() if models is None else models).items()]

    def classify(run_id, image):
        # Unprocessed (preprocess=False), so that a file Pillow cannot read gets this app's one line, not
        # Gradio's traceback: `image` is the upload's record ({"path": ..., ...}, or an object with `.path`).
        path = image.get("path") if isinstance(image, dict) else getattr(image, "path", None)
        if path is None:
            raise gr.Error("no image yet: upload, paste or drop one")
        if not run_id:
            raise gr.Error(f"no model chosen; trained models appear here once `make sweep` has written a model.h5 "
                           f"under {outputs}")
        try:
            with open(path, "rb") as f:
                top = classifier.predict(run_id, f.read())
        except ConfigError as e:
            raise gr.Error(str(e)) from None
        return {t["class"]: t["probability"] for t in top}

    models = classifier.available()
    found, chosen = choices(models), most_accurate(models)
    shown = models[chosen]["example_images"] if chosen else []  # the chosen model's

    def examples(run_id):
        shown = classifier.available().get(run_id, {}).get("example_images", [])
        return gr.Dataset(samples=[[path] for path, _ in shown], sample_labels=[label for _, label in shown])
    with gr.Blocks(title="ResNet classifier") as demo:
        where = f"`{os.path.abspath(outputs)}`" + (f" and the committed ones of `{os.path.abspath(results)}`"
                                                    if results else "")
        gr.Markdown(f"# ResNet classifier\nThe trained models of {where}: pick one, give it an image, and see its "
                    f"five most likely classes.")
        with gr.Row():
            with gr.Column():
                model = gr.Dropdown(found, value=chosen, label="Model", elem_id="model")
                image = gr.Image(type="pil", sources=["upload", "clipboard"], label="Image", elem_id="image")
                button = gr.Button("Classify", variant="primary", elem_id="classify")
            label = gr.Label(num_top_classes=5, label="Top 5", elem_id="predictions")
        examples_of = gr.Examples([[path] for path, _ in shown], [image], label="Test images of its data set",
                                  elem_id="example-images", example_labels=[name for _, name in shown] or None)
        model.change(examples, model, examples_of.dataset)
        button.click(classify, [model, image], label, api_name="classify", preprocess=False)
        demo.load(lambda: gr.Dropdown(choices=choices()), None, model)  # models finished since the app started
    return demo


def _describe(info):
    accuracy = info.get("test_accuracy")
    facts = [info.get("dataset"), None if accuracy is None else f"test accuracy {accuracy:.3f}"]
    return f"{info['id']} ({', '.join(f for f in facts if f)})" if any(facts) else info["id"]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m resnet_keras.share.app", description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", default="outputs", help="folder searched for model.h5 files (default: outputs)")
    ap.add_argument("--results", default=None, help="folder of committed reference runs whose models are served "
                    "after the outputs' (make app: results)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    ap.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    ap.add_argument("--share", action="store_true", help="also a public gradio.live link (needs internet)")
    args = ap.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        demo = build_demo(args.outputs, args.results)
    except ConfigError as e:
        print(f"app: {e}", file=sys.stderr)
        return 2
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_UPLOAD,
                allowed_paths=[args.outputs] + ([args.results] if args.results else []))  # the example images
    return 0


if __name__ == "__main__":
    sys.exit(main())
