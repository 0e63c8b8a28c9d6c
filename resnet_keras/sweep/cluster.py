"""Sweeps on a Dask cluster: each run is a task of Dask `distributed`.

    make sweep SCHEDULER=tcp://HOST:8786   # a running scheduler; its workers share outputs/
    make sweep SCHEDULER=local JOBS=4      # a LocalCluster of 4 worker processes here

The sweep submits `sweep.execute_run` through the client's
`concurrent.futures` executor (`executor`), so everything else (the plan, the
hashes, the progress lines, the index) is the local sweep's.

GPU workers declare their GPU as a Dask resource, and say how many runs may
share it: `CUDA_VISIBLE_DEVICES=0 dask worker tcp://HOST:8786 --nthreads 2
--resources GPU=2` runs at most two runs at a time on GPU 0. When any worker
declares `GPU`, every run asks for one unit of it, so runs go only to GPU
workers, as many at a time as their `GPU` says; each run sets the sweep's
GPU-sharing settings and compile cache (`preflight.worker_environment`) in its worker first.

A worker that dies during a
run loses nothing committed: the scheduler gives the task to another worker
(up to `distributed.scheduler.allowed-failures` times), and the run resumes
from its last completed epoch in the shared `outputs/` folder.
"""

import os
import re
import socket
import sys

from resnet_keras.errors import ConfigError

CONNECT_TIMEOUT_S = 10


def check_scheduler(scheduler):
    """Return `scheduler` if it is "local" or a scheduler address, else raise ConfigError."""
    if scheduler != "local" and not re.match(r"^(tcp|tls|ucx)://[^/\s]+:\d+$", scheduler):
        raise ConfigError(f"scheduler={scheduler!r} is not accepted; use tcp://HOST:PORT of a running Dask "
                          f"scheduler, or local")
    return scheduler


def connect(scheduler, jobs=1, timeout=CONNECT_TIMEOUT_S):
    """A `distributed.Client` for `scheduler` ("tcp://HOST:PORT" or "local"); ConfigError when it cannot be had."""
    check_scheduler(scheduler)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(f"scheduler={scheduler!r} needs Dask's distributed package; run `make venv`") from None
    if scheduler == "local":
        # One thread per worker: a run already uses every core it is given, and redirects its process's stderr.
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster)
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise ConfigError(f"scheduler={scheduler!r} cannot be reached ({str(e).splitlines()[0]}); start it "
                          f"(`dask scheduler`) or leave SCHEDULER empty to run here") from None


def executor(client):
    """The client's `concurrent.futures` executor for runs, how many it takes at a time, and its workers in words.

    Each submission is a run of its own (`pure=False`). When workers declare
    a `GPU` resource, a run needs one unit of it, and a worker takes no more
    runs at a time than its `GPU` (or its threads, if fewer).
    """
    info = client.scheduler_info(n_workers=-1)["workers"].values()
    gpu_workers = [w for w in info if w.get("resources", {}).get("GPU")]
    if gpu_workers:
        slots = sum(min(w.get("nthreads", 1), int(w["resources"]["GPU"])) for w in gpu_workers)
        return client.get_executor(pure=False, resources={"GPU": 1}), slots, _count(len(gpu_workers), "Dask GPU worker")
    return client.get_executor(pure=False), sum(w.get("nthreads", 1) for w in info), _count(len(info), "Dask worker")


def _count(n, noun):
    return f"{n} {noun}{'s' * (n != 1)}"


def where():
    """Where this code runs: {"host", "worker"} (a Dask worker's address, else "pid N")."""
    worker = f"pid {os.getpid()}"
    distributed = sys.modules.get("distributed")  # imported already on a Dask worker; never imported here
    if distributed is not None:
        try:
            worker = distributed.get_worker().address
        except ValueError:  # not inside a Dask task
            pass
    return {"host": socket.gethostname(), "worker": worker}
