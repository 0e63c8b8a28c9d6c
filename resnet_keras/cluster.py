"""Sweeps on a Dask cluster: each run is a task of Dask `distributed`.

    make sweep SCHEDULER=tcp://HOST:8786   # a running scheduler; its workers share outputs/
    make sweep SCHEDULER=local JOBS=4      # a LocalCluster of 4 worker processes here

The sweep submits `sweep.execute_run` through the client's
`concurrent.futures` executor, so everything else (the plan, the hashes, the
progress lines, the index) is the local sweep's. A worker that dies during a
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


def workers(client):
    """Number of workers, and of threads (runs at a time), that the client's scheduler has now."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    return len(info), sum(w.get("nthreads", 1) for w in info.values())


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
