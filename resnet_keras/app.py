"""A small web page that classifies an uploaded image with any trained model in `outputs/`.

    make app                                   # http://127.0.0.1:8000/
    python -m resnet_keras.app --outputs outputs --port 8000 [--host 0.0.0.0]

Pick a model (every `model.h5` under the outputs folder, with the data set and
test accuracy its run recorded), choose an image file (any format Pillow reads;
it is resized to the model's 32x32 input), and the page shows the five most
likely classes with their probabilities. Class names come from the run's
`results.json`.

Built on the standard library's HTTP server and Pillow (already required by
matplotlib): one page, two JSON endpoints, nothing else to install.

    GET  /                      the page
    GET  /api/models            [{"id": "q1/cifar10-n3-adam", "dataset": ..., "test_accuracy": ..., ...}, ...]
    POST /api/predict?model=ID  body: the image file; answer {"model": ID, "top": [{"class", "probability"}, ...]}
"""

import argparse
import html
import io
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from resnet_keras import products
from resnet_keras.errors import ConfigError

MAX_UPLOAD = 20 * 1024 * 1024  # bytes


def find_models(outputs):
    """Every trained `model.h5` under `outputs`, as {id: info}; id is the run folder relative to `outputs`.

    Hidden folders (resume state, the smoke profile's data) are skipped.
    """
    models = {}
    for folder, dirs, files in os.walk(outputs):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if products.MODEL not in files:
            continue
        run_id = os.path.relpath(folder, outputs).replace(os.sep, "/")
        # The run's settings (its data set) from the sweep's record, then what the run measured.
        info = {**_read_dict(os.path.join(folder, products.RECORD)).get("settings", {}),
                **_read_dict(os.path.join(folder, products.RESULTS))}
        models[run_id] = {"id": run_id, "path": os.path.join(folder, products.MODEL), "dataset": info.get("dataset"),
                          "model": info.get("model"), "test_accuracy": info.get("test_accuracy"),
                          "class_names": info.get("class_names")}
    return models


def _read_dict(path):
    """The JSON object in `path`, or {} where the file is missing, unreadable or holds no object."""
    try:
        with open(path) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def read_image(data, size):
    """Decode image bytes (PNG, JPEG, ...) into a float32 array (1, h, w, 3) of RGB pixels in [0, 255]."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image = image.convert("RGB").resize((size[1], size[0]), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, ValueError):
        raise ConfigError(f"the upload ({len(data):,} bytes) is not an image Pillow can read; "
                          f"use PNG, JPEG, BMP, GIF or WebP") from None
    return np.asarray(image, dtype=np.float32)[None]


def top_k(probabilities, class_names, k=5):
    """The k most likely classes as [{"class": name, "probability": p}, ...], most likely first."""
    import numpy as np

    order = np.argsort(probabilities)[::-1][:k]
    names = class_names or [f"class {i}" for i in range(len(probabilities))]
    return [{"class": names[i], "probability": round(float(probabilities[i]), 6)} for i in order]


class Classifier:
    """Loads models on first use (safe mode) and keeps them; safe to call from several threads."""

    def __init__(self, outputs):
        self.outputs = outputs
        self._models = {}
        self._lock = threading.Lock()

    def available(self):
        return find_models(self.outputs)

    def predict(self, run_id, data, k=5):
        models = self.available()
        if run_id not in models:
            accepted = ", ".join(sorted(models)) or f"none: no model.h5 under {self.outputs!r} yet (run make sweep)"
            raise ConfigError(f"model={run_id!r} is not accepted; use one of {accepted}")
        info = models[run_id]
        with self._lock:
            key = (info["path"], os.path.getmtime(info["path"]))
            if key not in self._models:
                from resnet_keras.inference import inference_model
                from resnet_keras.files import load_h5

                self._models = {key: inference_model(load_h5(info["path"]))}  # one at a time: models can be large
            model = self._models[key]
            x = read_image(data, model.input_shape[1:3])
            probabilities = model.predict_on_batch(x)[0]
        return top_k(probabilities, info["class_names"], k)


class Handler(BaseHTTPRequestHandler):
    classifier = None  # set by `make_server`

    def log_message(self, format, *args):  # one short line per request, on stderr
        sys.stderr.write(f"app: {self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")

    def _send(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type + "; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status, obj):
        self._send(status, json.dumps(obj))

    def do_GET(self):
        path = urllib.parse.urlparse(self.path).path
        if path == "/":
            self._send(200, PAGE.format(outputs=html.escape(os.path.abspath(self.classifier.outputs))),
                       "text/html")
        elif path == "/api/models":
            models = self.classifier.available().values()
            self._json(200, [{k: v for k, v in m.items() if k != "path"} for m in models])
        else:
            self._json(404, {"error": f"no page {path!r}; use / or /api/models"})

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/api/predict":
            return self._json(404, {"error": f"no endpoint {url.path!r}; use /api/predict"})
        run_id = urllib.parse.parse_qs(url.query).get("model", [""])[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD:
            return self._json(413, {"error": f"the upload is {length:,} bytes; the limit is {MAX_UPLOAD:,}"})
        if length == 0:
            return self._json(400, {"error": "no image in the request; send the image file as the body"})
        data = self.rfile.read(length)
        try:
            top = self.classifier.predict(run_id, data)
        except ConfigError as e:
            return self._json(400, {"error": str(e)})
        self._json(200, {"model": run_id, "top": top})


def make_server(outputs="outputs", host="127.0.0.1", port=8000):
    """An HTTP server for the app (not started); port 0 picks a free one."""
    if not os.path.isdir(outputs):
        raise ConfigError(f"outputs={outputs!r} is not a folder; run `make sweep` first or pass --outputs")
    handler = type("AppHandler", (Handler,), {"classifier": Classifier(outputs)})
    return ThreadingHTTPServer((host, port), handler)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m resnet_keras.app", description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", default="outputs", help="folder searched for model.h5 files (default: outputs)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    ap.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    args = ap.parse_args(argv)
    try:
        server = make_server(args.outputs, args.host, args.port)
    except (ConfigError, OSError) as e:
        print(f"app: {e}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"app: serving the models of {os.path.abspath(args.outputs)} at http://{host}:{port}/ (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ResNet classifier</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 46em; }}
label {{ display: block; margin: 1em 0 0.3em; font-weight: bold; }}
select, input, button {{ font-size: 1em; }}
#preview {{ max-width: 160px; max-height: 160px; image-rendering: pixelated; margin-top: 0.5em; display: none; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
td, th {{ padding: 4px 10px; text-align: left; border-bottom: 1px solid #ddd; }}
.bar {{ background: #4a7fc1; height: 0.8em; }}
#status {{ margin-top: 1em; }}
.error {{ color: #b00020; }}
</style></head>
<body>
<h1>ResNet classifier</h1>
<p>Models trained by the sweep in <code>{outputs}</code>. Choose one and an image; the page shows the five most
likely classes.</p>
<label for="model">Model</label>
<select id="model"></select>
<label for="image">Image</label>
<input id="image" type="file" accept="image/*">
<br><img id="preview" alt="the chosen image">
<p><button id="classify" disabled>Classify</button></p>
<div id="status" role="status"></div>
<table id="predictions" hidden><thead><tr><th>class</th><th>probability</th><th></th></tr></thead>
<tbody></tbody></table>
<script>
const $ = (id) => document.getElementById(id);
const say = (text, error) => {{ $("status").textContent = text; $("status").className = error ? "error" : ""; }};
const ready = () => {{ $("classify").disabled = !($("model").value && $("image").files.length); }};

fetch("/api/models").then((r) => r.json()).then((models) => {{
  for (const m of models) {{
    const acc = m.test_accuracy == null ? "" : `, test accuracy ${{m.test_accuracy.toFixed(3)}}`;
    $("model").add(new Option(`${{m.id}} (${{m.dataset || "?"}}${{acc}})`, m.id));
  }}
  say(models.length ? `${{models.length}} models` : "No trained models yet: run make sweep.", !models.length);
  ready();
}});

$("model").addEventListener("change", ready);
$("image").addEventListener("change", () => {{
  const file = $("image").files[0];
  if (file) {{ $("preview").src = URL.createObjectURL(file); $("preview").style.display = "block"; }}
  ready();
}});

$("classify").addEventListener("click", async () => {{
  say("Classifying...");
  $("predictions").hidden = true;
  const response = await fetch("/api/predict?model=" + encodeURIComponent($("model").value),
                               {{ method: "POST", body: $("image").files[0] }});
  const answer = await response.json();
  if (!response.ok) {{ say(answer.error, true); return; }}
  const body = $("predictions").tBodies[0];
  body.replaceChildren();
  for (const p of answer.top) {{
    const row = body.insertRow();
    row.insertCell().textContent = p.class;
    row.insertCell().textContent = (100 * p.probability).toFixed(1) + "%";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = Math.max(1, Math.round(200 * p.probability)) + "px";
    row.insertCell().append(bar);
  }}
  $("predictions").hidden = false;
  say(`Top ${{answer.top.length}} classes from ${{answer.model}}`);
}});
</script>
</body></html>
"""


if __name__ == "__main__":
    sys.exit(main())
