"""The files of one run, named once: `outputs/<question>/<run>/`.

Written by the run's notebook (`train`, then `report.finish`):

    model.h5       the trained model             history.csv    one row per epoch
    tensorboard/   history.csv for TensorBoard (train/, validation/)
    curves.png     learning curves               confusion.png  confusion matrix on the test set
    examples/      a few test images, one per class (PNG): the demo's examples
    predictions.npy  the predicted class of each test image, in the test set's order
    results.json   the run's figures (accuracy, parameters, times), written last

Written by the sweep around the notebook:

    notebook.ipynb the executed notebook         report.html    the same, without code
    kernel.log     the kernel's stderr           record.json    the sweep's record of a finished run
    error.json     the record of a failed run (instead of record.json)

While a run is under way: `.plan.json` (what the sweep started it with) and
`.resume/` (and `finetune/.resume/`, for the transfer notebook's second
stage): the state to continue from, removed once the run is recorded.
"""

MODEL = "model.h5"
BEST_MODEL = "best.h5"  # `train(save_best=True)`: the best model by the monitored metric
HISTORY = "history.csv"
TENSORBOARD = "tensorboard"  # TensorBoard event files of the epochs (`checkpoint.RunCheckpoint`)
CURVES = "curves.png"
CONFUSION = "confusion.png"
RESULTS = "results.json"
PREDICTIONS = "predictions.npy"  # the last epoch's model on the test set: what `results.json`'s accuracy counts
EXAMPLES = "examples"  # `report.finish(data=...)`: test images for the demo and a published model's Space
NOTEBOOK = "notebook.ipynb"
REPORT = "report.html"
KERNEL_LOG = "kernel.log"
RECORD = "record.json"
ERROR = "error.json"
PLAN = ".plan.json"
RESUME = ".resume"
FINETUNE = "finetune"  # the transfer notebook's fine-tuning stage trains in this subfolder

FIGURES = {"curves": CURVES, "confusion": CONFUSION}  # `report.finish(figures=...)`
FROM_NOTEBOOK = (MODEL, HISTORY, CURVES, RESULTS)  # every notebook writes these
FROM_SWEEP = (NOTEBOOK, REPORT, KERNEL_LOG, RECORD, ERROR)  # the sweep's, around the notebook
COMPLETE = (NOTEBOOK, REPORT, MODEL, HISTORY, CURVES, RECORD)  # a finished run has these
LINKS = (("report", REPORT), ("notebook", NOTEBOOK), ("model", MODEL), ("history", HISTORY), ("curves", CURVES),
         ("confusion", CONFUSION), ("TensorBoard", TENSORBOARD), ("record", RECORD))  # the index's, where they exist
RESUME_FOLDERS = (RESUME, f"{FINETUNE}/{RESUME}")
# A committed run's folder in results/ (`summary.reference`) holds its settings, results and provenance here; a
# notebook redrawing its report (`train(replay=True)`) reads where and how it trained.
REFERENCE = "run.json"
