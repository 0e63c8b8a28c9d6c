"""Run every experiment of a profile with papermill, incrementally.

    python -m resnet_keras.sweep --profile quick --jobs 2 [--force] [--only q1_scratch]

For each run (see `params.py`) the notebook is executed into
`outputs/<question>/<run>/`, whose files `products.py` names.

A run is complete when `record.json` exists and records the current hash of
the notebook, the parameters, the Keras backend and the precision the run
resolves to here, and the digests of the `resnet_keras` modules it executed
(its notebook lists them) are current; complete runs are skipped. An
interrupted run resumes from its last epoch; one whose hash or package code
changed starts afresh. A failed run writes `error.json` instead and the sweep
goes on. At the end `outputs/index.html` and `outputs/results.csv` summarise
every run.

Before the first run, `preflight.probe` checks in one child process that
the data and weights of every selected run are here (or downloads them once),
and the sweep prints how many runs it will do and about how long they take.
`outputs/.machine.json` remembers the probe's backend, GPU and speed for as
long as the installed backend packages, their settings and the GPUs stay the
same: a sweep with nothing to run then skips the probe, and one with runs to
do does not measure the speed again.
Workers get `preflight.worker_environment`: the GPU-sharing settings, so that
`--jobs N` runs share a GPU, and JAX's compilation cache in the outputs folder.

Runs are independent tasks submitted to a `concurrent.futures.Executor`
(a local process pool by default). Any executor with the same interface can
take its place, e.g. Dask's `distributed.Client(...).get_executor()`, to spread
a sweep over several machines sharing the `outputs/` folder.
"""

import argparse
import concurrent.futures
import contextlib
import fnmatch
import hashlib
import importlib
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
import traceback

from resnet_keras import products
from resnet_keras.catalog import resolve_precision
from resnet_keras.errors import ConfigError
from resnet_keras.files import (
    atomic_path,
    package_modules,
    read_json_object,
    write_json,
)
from resnet_keras.sweep import cluster, sources
from resnet_keras.sweep.export import export_report
from resnet_keras.sweep.params import plan
from resnet_keras.sweep.preflight import (
    MIN_CALIBRATION_S,
    SPEED,
    auto_jobs,
    blocked_runs,
    data_key,
    estimate,
    fmt_duration,
    nvidia_gpus,
    probe,
    remember,
    remembered,
    worker_environment,
)


def run_dir(outputs, run):
    return os.path.join(outputs, run.question, run.name)


def run_hash(run, machine, root="."):
    """Hash of what determines a run's results before it runs: notebook, parameters, backend, precision.

    `machine` is `preflight.probe`'s answer: the Keras backend, whether it
    sees a GPU and the CPU's flags, which decide what precision "auto" means
    (a run finished in float32 on a CPU is not reused on a GPU, where "auto"
    is mixed float16, nor on a CPU with bfloat16 instructions).
    The package code a run executed is known once it ran: its record lists
    those modules with their digests, and `is_complete` checks them too.
    """
    h = hashlib.sha256(_notebook_bytes(run, root))
    h.update(json.dumps(run.parameters, sort_keys=True).encode())
    h.update(f"{machine['backend']} {_precision(run, machine)}".encode())
    return h.hexdigest()[:16]


def _notebook_bytes(run, root):
    with open(os.path.join(root, run.notebook), "rb") as f:
        return f.read()


def _precision(run, machine):
    return resolve_precision(run.settings.get("precision", "float32"), machine["gpu"], machine["backend"],
                             machine.get("cpu_flags"))


def _current(record, digest):
    """True when a run's record was made with `digest` and the package code it executed is unchanged."""
    kept = record.get("sources")
    return record.get("hash") == digest and isinstance(kept, dict) and bool(kept) and not sources.changed(kept)


def is_complete(folder, digest):
    """True when every product of a finished run exists and its record is current (`_current`).

    A current record that still holds one digest per module is upgraded, once,
    to the digests of each module's definitions (`sources`), so that later
    additions to those modules leave it current.
    """
    if not all(os.path.isfile(os.path.join(folder, p)) for p in products.COMPLETE):
        return False
    path = os.path.join(folder, products.RECORD)
    record = read_json_object(path)
    if not _current(record, digest):
        return False
    upgraded = sources.upgrade(record["sources"])
    if upgraded != record["sources"]:
        with contextlib.suppress(OSError):  # a read-only outputs folder: the old digests keep serving
            write_json(path, {**record, "sources": upgraded})
    return True


def why(run, machine, outputs, root="."):
    """Where a run stands: ("up to date" | "to run" | "failed before", the reason), as the sweep reports it.

    The reason names what changed since the run's record: its parameters (with
    the values), its notebook, the backend or precision, or the package modules
    its code changed in; a half-done run says whether it resumes.
    """
    folder, digest = run_dir(outputs, run), run_hash(run, machine, root)
    if is_complete(folder, digest):
        return "up to date", ""
    record = read_json_object(os.path.join(folder, products.RECORD))
    failed = read_json_object(os.path.join(folder, products.ERROR))
    epoch = _committed_epoch(folder)
    blocker = resume_blocker(folder, digest) if epoch else None
    then = f"starts again: {blocker}" if blocker else f"resumes after epoch {epoch}"
    if os.path.isfile(os.path.join(folder, products.PLAN)) and not record and not failed:
        if not epoch:
            return "to run", "interrupted before its first epoch"
        return "to run", f"half-done ({epoch} epochs), {then}" if blocker else f"half-done, {then}"
    if failed and failed.get("hash") == digest:
        error = f"{failed.get('error', '')} ({failed.get('where', '')})"
        return "failed before", f"{error}; {then}" if epoch else error
    if not record and not failed:
        return "to run", "new"
    old = record or failed
    if old.get("hash") != digest:
        return "to run", _hash_change(run, machine, old, root)
    missing = [p for p in products.COMPLETE if not os.path.isfile(os.path.join(folder, p))]
    if missing:
        return "to run", f"{', '.join(missing)} missing"
    changed = sources.changed(record.get("sources") or {})
    return "to run", f"code changed in {', '.join(changed)}" if changed else "no record of the code it executed"


def _hash_change(run, machine, old, root):
    """What differs between a run and the record `old` of an earlier one with another run hash."""
    params = old.get("parameters") or {}
    if params != run.parameters:
        keys = sorted(set(params) | set(run.parameters), key=str)
        diffs = [f"{k} {params.get(k, '-')} -> {run.parameters.get(k, '-')}" for k in keys
                 if params.get(k) != run.parameters.get(k)]
        return "parameters changed: " + ", ".join(diffs)
    if old.get("notebook_digest") not in (None, _notebook_digest(run, root)):
        return f"notebook changed: {run.notebook}"
    results = old.get("results") or {}
    if results.get("backend") not in (None, machine["backend"]):
        return f"backend changed: {results['backend']} -> {machine['backend']}"
    if results.get("precision") not in (None, _precision(run, machine)):
        return f"precision changed: {results['precision']} -> {_precision(run, machine)}"
    return f"notebook changed: {run.notebook}" if "notebook_digest" not in old else "run hash changed"


def _notebook_digest(run, root):
    try:
        return hashlib.sha256(_notebook_bytes(run, root)).hexdigest()[:16]
    except OSError:
        return None


def _committed_epoch(folder):
    """The epochs a half-done run has committed, over all its stages (a Q3 run's fine-tuning counts on)."""
    return sum(read_json_object(os.path.join(folder, resume, "state.json")).get("epoch", 0)
               for resume in products.RESUME_FOLDERS)


def resumes_after(folder, digest):
    """The epochs a half-done run in `folder` has done and keeps when it resumes (0 if it starts again)."""
    epoch = _committed_epoch(folder)
    return epoch if epoch and not resume_blocker(folder, digest) else 0


def resume_blocker(folder, digest):
    """Why the half-done run in `folder` must start again, or None when it may resume where it stopped.

    It resumes while its run hash is the one it started with and the package
    modules it has executed so far (its checkpoints list them) have the code
    they had then (`sources.changed`); editing a comment or a docstring,
    adding a function, or editing any other module (the demo, the index)
    leaves it free to resume.
    """
    planned = read_json_object(os.path.join(folder, products.PLAN))
    if planned.get("hash") != digest:
        return "parameters, notebook, backend or precision changed"
    kept = planned.get("sources") or {}
    executed = set()
    for resume in products.RESUME_FOLDERS:
        state = read_json_object(os.path.join(folder, resume, "state.json"))
        if state and "modules" not in state:
            return "its checkpoint does not list the code it executed (written by an earlier version)"
        executed |= set(state.get("modules", []))
    unplanned = executed - set(kept)  # not in the package when the run started
    changed = sorted(unplanned | set(sources.changed({m: kept[m] for m in executed - unplanned})))
    return f"code changed in {', '.join(changed)}" if changed else None


def load_record(outputs, run, digest):
    """What is on disk for a run that this sweep did not execute."""
    folder = run_dir(outputs, run)
    for name in (products.RECORD, products.ERROR):
        try:
            with open(os.path.join(folder, name)) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if not (_current(record, digest) if name == products.RECORD else record.get("hash") == digest):
            record["status"] = "out of date"
        return {**record, "skipped": True}
    return {"run": run.key, "status": "not run", "skipped": True}


def _strip_ansi(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _error_location(tb_lines):
    """The innermost 'File ..., line N' or notebook cell of a traceback."""
    where = ""
    for line in map(_strip_ansi, tb_lines):
        m = re.search(r'File "?([^",]+)"?, line (\d+)', line) or re.search(r"(Cell In\[\d+\]), line (\d+)", line)
        if m:
            where = f"{m.group(1)}:{m.group(2)}"
    return where


def execute_run(run, outputs, digest, root="."):
    """Execute one run in its folder; return a result dict (never raises).

    A standalone function of picklable arguments, so that any executor can run it.
    """
    for name, value in worker_environment(outputs).items():  # GPU sharing, compile cache; the user's settings win
        os.environ.setdefault(name, value)
    folder = os.path.abspath(run_dir(outputs, run))
    os.makedirs(folder, exist_ok=True)
    # Not complete any more; temporary files of a killed attempt (hidden folders too) are garbage.
    stale = [os.path.join(folder, name) for name in (products.RECORD, products.ERROR)]
    stale += [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files
              if f.startswith(".") and ".tmp-" in f]
    for path in stale:
        if os.path.exists(path):
            os.remove(path)
    plan_file = os.path.join(folder, products.PLAN)
    if os.path.exists(plan_file):
        if resume_blocker(folder, digest):
            for entry in os.listdir(folder):  # parameters or executed code changed: do not resume
                path = os.path.join(folder, entry)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    resumed_after = _committed_epoch(folder)  # 0 when it starts again: its checkpoints went above
    write_json(plan_file, {"hash": digest, "sources": sources.digests(package_modules()),
                           "run": run.key, "parameters": run.parameters})
    with _stderr_to(os.path.join(folder, products.KERNEL_LOG)):  # TensorFlow's C++ logs, kept out of the terminal
        return _execute(run, folder, digest, root, resumed_after)


@contextlib.contextmanager
def _stderr_to(path):
    """Send this process's (and its children's) stderr to `path` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _execute(run, folder, digest, root, resumed_after=0):
    import jupytext
    import papermill

    start = time.time()
    nb_path = os.path.join(folder, products.NOTEBOOK)
    error = None
    try:
        nb = jupytext.read(os.path.join(root, run.notebook))
        with atomic_path(nb_path) as tmp:
            try:
                # The kernel's own stderr (TensorFlow's C++ logs) stays in kernel.log, out of the report.
                papermill.execute_notebook(nb, tmp, parameters={**run.parameters, "out_dir": folder},
                                           kernel_name="python3", progress_bar=False, cwd=os.path.abspath(root),
                                           extra_arguments=["--IPKernelApp.capture_fd_output=False"])
            except papermill.PapermillExecutionError as e:
                error = {"error": f"{e.ename}: {_strip_ansi(str(e.evalue))}".strip(),
                         "where": _error_location(e.traceback), "cell": e.exec_count}
        export_report(nb_path, os.path.join(folder, products.REPORT), f"{run.key}")
    except Exception as e:  # a sweep must survive anything one run does
        error = error or {"error": f"{type(e).__name__}: {e}", "where": _error_location(
            traceback.format_exception(e)), "cell": None}
    elapsed = round(time.time() - start, 1)
    if error is None:
        try:
            with open(os.path.join(folder, products.RESULTS)) as f:
                results = json.load(f)
            missing = [p for p in products.FROM_NOTEBOOK if not os.path.isfile(os.path.join(folder, p))]
            if missing:
                raise FileNotFoundError(f"the notebook did not write {', '.join(missing)}")
        except (OSError, ValueError) as e:
            error = {"error": f"{type(e).__name__}: {e}", "where": run.notebook, "cell": None}
    # elapsed_s is this attempt's; a run resumed after an earlier attempt's epochs says how many.
    record = {"run": run.key, "question": run.question, "name": run.name, "hash": digest, "elapsed_s": elapsed,
              **({"resumed_after": resumed_after} if resumed_after else {}),
              **cluster.where(),
              "parameters": run.parameters, "settings": run.settings, "notebook": run.notebook,
              "notebook_digest": _notebook_digest(run, root),
              "commit": _commit(root), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    if error:
        record.update(status="failed", **error)
        write_json(os.path.join(folder, products.ERROR), record)
    else:
        modules = results.pop("modules", None) or ["resnet_keras"]
        record.update(status="ok", results=results, sources=sources.digests(modules))
        write_json(os.path.join(folder, products.RECORD), record)  # the commit point of the run
        for resume in products.RESUME_FOLDERS:
            shutil.rmtree(os.path.join(folder, resume), ignore_errors=True)
    return record


def _commit(root):
    """The checkout's commit (`git describe --always --dirty`: "-dirty" when files differ from it); in a copy of
    the project without its git history (a bare GPU machine), $RESNET_KERAS_COMMIT, the commit it was copied from;
    else None."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is not None and out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip()
    return os.environ.get("RESNET_KERAS_COMMIT") or None


def _pin_gpu(slots, gpu_count):
    """Process-pool initializer: give each worker one of `gpu_count` GPUs, in turn."""
    with slots.get_lock():
        slot = slots.value
        slots.value += 1
    os.environ["CUDA_VISIBLE_DEVICES"] = str(slot % gpu_count)


def run_sweep(runs, outputs="outputs", jobs=1, force=False, root=".", executor=None, log=print, machine=None,
              dry_run=False, advise=None):
    """Execute the runs that are not up to date; return {run key: record}.

    `executor`: any `concurrent.futures.Executor`; default a process pool of
    `jobs`, each worker on its own GPU in turn when there are several.
    `machine`: `preflight.probe(..., measure=True)`'s answer (probed here when not given).
    Logs each run's state and why (`why`), then how many runs there are to
    do and how long they should take here (from runs finished here before,
    else a measured ResNet-20 step), and then `advise(seconds, machine, finished)`'s
    lines, if any. `dry_run`: stop there, having run nothing.
    """
    todo, records, finished = [], {}, []
    machine = machine or probe(runs, root, measure=True)
    states = {run.key: ("to run", "forced") if force else why(run, machine, outputs, root) for run in runs}
    for run in runs:
        digest = run_hash(run, machine, root)
        state, reason = states[run.key]
        if state == "up to date":
            records[run.key] = load_record(outputs, run, digest)
            finished.append((run, records[run.key].get("elapsed_s", 0), records[run.key].get("resumed_after", 0)))
            log(f"up to date  {run.key}")
        else:
            todo.append((run, digest))
    if not todo:
        return records
    if "classes" not in machine:  # remembered, not probed (`preflight.remembered`): check the inputs, measure
        machine = probe(runs, root, measure=True)
    finished = [(run, elapsed, before) for run, elapsed, before in finished if elapsed >= MIN_CALIBRATION_S]
    resumed = {run.key: resumes_after(run_dir(outputs, run), digest) for run, digest in todo}
    for run, _ in todo:
        state, reason = states[run.key]
        log(f"{state:<11} {run.key}: {reason}; about "
            f"{fmt_duration(estimate([run], machine, root, finished, resumed))}")
    seconds = estimate([r for r, _ in todo], machine, root, finished, resumed)
    basis = (f"from {len(finished)} finished run{'s' * (len(finished) > 1)}" if finished else
             f"ResNet-20 trains at {machine['img_per_s']:,.0f} img/s here")
    log(f"{len(todo)} run{'s' * (len(todo) > 1)} to do on {machine['backend']} "
        f"({'GPU' if machine['gpu'] else 'no GPU'}): about {fmt_duration(seconds)} one at a time ({basis})")
    for line in advise(seconds, machine, finished) if advise else ():
        log(line)
    if dry_run:
        return records
    own = executor is None
    if own:
        context = multiprocessing.get_context("spawn")
        gpus = len(nvidia_gpus()) if machine["gpu"] and "CUDA_VISIBLE_DEVICES" not in os.environ else 0
        pin = dict(initializer=_pin_gpu, initargs=(context.Value("i", 0), gpus)) if gpus > 1 else {}
        executor = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, **pin)
    # By its module's name, also when this file runs as __main__: executors on other machines import it.
    task = importlib.import_module("resnet_keras.sweep.runner").execute_run
    start, done, durations = time.time(), 0, []
    try:
        futures = {}
        for i, (run, digest) in enumerate(todo, 1):
            futures[executor.submit(task, run, outputs, digest, root)] = run
            if i <= jobs:
                log(f"[{i}/{len(todo)}] start {run.key}")
        for future in concurrent.futures.as_completed(futures):
            run = futures[future]
            done += 1
            try:
                record = future.result()
            except Exception as e:  # the worker itself died
                record = {"run": run.key, "question": run.question, "name": run.name, "status": "failed",
                          "error": f"{type(e).__name__}: {e}", "where": "sweep worker", "parameters": run.parameters}
            records[run.key] = record
            durations.append(record.get("elapsed_s", 0))
            remaining = len(todo) - done
            eta = sum(durations) / len(durations) * remaining / min(jobs, max(remaining, 1)) if remaining else 0
            outcome = "ok" if record["status"] == "ok" else f"FAILED: {record['error']}"
            log(f"[{done}/{len(todo)}] {outcome:<6} {run.key} in {fmt_duration(record.get('elapsed_s', 0))}; "
                f"sweep {fmt_duration(time.time() - start)}, ETA {fmt_duration(eta)}")
            if done + jobs <= len(todo):
                log(f"[{done + jobs}/{len(todo)}] start {todo[done + jobs - 1][0].key}")
    finally:
        if own:
            executor.shutdown(cancel_futures=True)
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m resnet_keras.sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", help="full, quick or smoke (default: full)")
    ap.add_argument("--jobs", default="1", help="runs at a time on this machine, or auto: 1 without a GPU, "
                    "up to 4 per GPU (default: 1)")
    ap.add_argument("--force", action="store_true", help="re-run complete runs too")
    ap.add_argument("--dry-run", action="store_true", help="say what each run's state is and why, and how long "
                    "the runs to do would take; run nothing")
    ap.add_argument("--only", nargs="*", help="run only these params files, by name (e.g. q1_scratch); "
                    "the index still lists every run")
    ap.add_argument("--runs", nargs="*", help="of those, run only the runs whose key (question/run, as --dry-run "
                    "lists them) matches one of these shell patterns (e.g. 'paper/resnet-20-*')")
    ap.add_argument("--params", default="params", help="folder of params files (default: params)")
    ap.add_argument("--outputs", default="outputs", help="output folder (default: outputs)")
    ap.add_argument("--results", default="results", help="reference results the index draws runs over "
                    "(default: results)")
    ap.add_argument("--scheduler", help="run on Dask: tcp://HOST:PORT of a running scheduler whose workers share "
                    "the outputs folder, or local (a LocalCluster of --jobs workers)")
    args = ap.parse_args(argv)
    from resnet_keras.summary.index import write_summary

    client = None
    try:
        if args.jobs != "auto" and not (args.jobs.isdigit() and int(args.jobs) >= 1):
            raise ConfigError(f"jobs={args.jobs!r} is not accepted; use an integer >= 1 or auto")
        if args.scheduler:
            cluster.check_scheduler(args.scheduler)
        runs = plan(args.params, args.profile)
        selected = [r for r in runs if not args.only or _file_name(r) in args.only]
        if not selected:
            raise ConfigError(f"only={args.only} matches no params file; use names of files in {args.params}/")
        selected = _matching(selected, args.runs)
        _check_writable(args.outputs)
        if args.scheduler and args.scheduler != "local":
            client = cluster.connect(args.scheduler)  # before anything else: unreachable is one line, nothing run
        known = remembered(args.outputs) or {}
        machine = known
        if args.force or not known or not all(
                is_complete(run_dir(args.outputs, r), run_hash(r, known)) for r in selected):
            # The data and weights of every selected run, before any of them starts, and the machine's speed.
            machine = probe(selected, measure=not all(k in known for k in SPEED))
            machine = {**{k: known[k] for k in SPEED if k in known}, **machine}
            remember(args.outputs, machine)
        blocked = {key: {"run": key, "status": "blocked", "error": why, "where": "pre-flight"}
                   for key, why in blocked_runs(selected, machine).items()}
    except ConfigError as e:
        if client is not None:
            client.close()
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    jobs = auto_jobs(nvidia_gpus(), machine["gpu"]) if args.jobs == "auto" else int(args.jobs)
    executor, on = None, ""
    if args.scheduler:
        client = client or cluster.connect("local", jobs)
        executor, jobs, workers = cluster.executor(client)
        on = f" on {workers} ({args.scheduler})"
    print(f"sweep: profile {args.profile}, {len(selected)} runs, {max(jobs, 1)} at a time{on}", flush=True)
    for key, record in blocked.items():
        print(f"blocked     {key}: {record['error']}", flush=True)
    try:
        runnable = [r for r in selected if r.key not in blocked]
        records = run_sweep(runnable, args.outputs, max(jobs, 1), args.force,
                            executor=executor, log=lambda s: print(s, flush=True), machine=machine,
                            dry_run=args.dry_run,
                            advise=lambda seconds, m, done: quicker(seconds, m, runnable, args, done))
    finally:
        if client is not None:
            local = client.cluster if args.scheduler == "local" else None
            client.close()
            if local is not None:
                local.close()
    if args.dry_run:
        return 0
    others = {r.key: load_record(args.outputs, r, run_hash(r, machine)) for r in runs
              if r.key not in records and r.key not in blocked}
    index = write_summary(args.outputs, runs, {**records, **others, **blocked}, args.results)
    failed = [k for k, r in records.items() if r["status"] != "ok"]
    ran = sum(not r.get("skipped") for r in records.values())
    print(f"sweep: {len(records) - len(failed)} ok ({len(records) - ran} up to date), {len(failed)} failed, "
          f"{len(blocked)} blocked; see {index}")
    for key in failed:
        print(f"  failed: {key}: {records[key]['error']} ({records[key].get('where', '')})", file=sys.stderr)
    for key, record in blocked.items():
        print(f"  blocked: {key}: {record['error']}", file=sys.stderr)
    return 1 if failed or blocked else 0


LONG_S = 6 * 3600  # a sweep longer than this one at a time is told what would be quicker
ASSIGNMENT = ("q1_scratch", "q2_grid")


def quicker(seconds, machine, selected, args, finished=()):
    """Lines telling what would be quicker than a sweep of `seconds`, with estimates (calibrated, as the sweep's, by
    the runs `finished` here); none if it is short."""
    if seconds <= LONG_S:
        return []

    def about(runs):
        known = [r for r in runs if data_key(r.settings, '.') in machine.get("classes", {})]
        return fmt_duration(estimate(known, machine, ".", finished)) if known else "unknown"

    by_file = {}
    for run in selected:
        by_file.setdefault(_file_name(run), []).append(run)
    lines = ["sweep: that is long for this machine; quicker (one at a time, estimated as above):"]
    assignment = [r for name in ASSIGNMENT for r in by_file.get(name, [])]
    if assignment and set(by_file) - set(ASSIGNMENT):  # more than the assignment is selected
        lines.append(f"  make sweep ONLY='{' '.join(ASSIGNMENT)}'  the assignment alone: about {about(assignment)}")
    if len(by_file) > 1:
        lines += [f"  make sweep ONLY={name}  about {about(runs)}" for name, runs in by_file.items()]
    if args.profile != "quick":
        quick = [r for r in plan(args.params, "quick") if _file_name(r) in by_file]
        lines.append(f"  make sweep PROFILE=quick  the same runs on CIFAR subsets: about {about(quick)}")
    if args.dry_run:
        return lines
    return lines + ["sweep: going on with the sweep as asked (Ctrl-C stops it; finished epochs are kept)"]


def _matching(runs, patterns):
    """The runs whose key matches one of the shell `patterns` (all of them without patterns); a pattern that
    matches none of `runs` is a ConfigError."""
    if not patterns:
        return runs
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(r.key, pattern) for r in runs):
            raise ConfigError(f"runs={pattern!r} matches no run of the selected params files; use question/run "
                              f"keys as --dry-run lists them, or shell patterns of them, e.g. {runs[0].key}")
    return [r for r in runs if any(fnmatch.fnmatchcase(r.key, p) for p in patterns)]


def _file_name(run):
    return os.path.splitext(os.path.basename(run.source))[0]


def _check_writable(outputs):
    try:
        os.makedirs(outputs, exist_ok=True)
        with atomic_path(os.path.join(outputs, ".write-test")) as tmp:
            with open(tmp, "w") as f:
                f.write("ok")
        os.remove(os.path.join(outputs, ".write-test"))
    except OSError as e:
        raise ConfigError(f"outputs={outputs!r} is not writable ({e.strerror}); choose a writable folder") from None


