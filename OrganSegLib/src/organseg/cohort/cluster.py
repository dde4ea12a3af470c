"""Where many tasks run: a local Dask cluster, an existing Dask scheduler, or a Slurm cluster (dask-jobqueue).

Dask is an optional extra (`pip install "organseg[cluster]"`): nothing here imports it before a cluster is
asked for. Workers declare their memory as the Dask resource `MEMORY` (bytes), so that a task that declares
its need (a large CT) is not given to a worker together with another one that would not fit beside it.
A worker that dies while running a task (killed, out of memory) has the task retried on another worker,
`retries` times, before the task is reported lost: the scheduler's `allowed-failures`. A local cluster
listens on 127.0.0.1 only (scheduler, workers, nannies and the dashboard, which shows CT file names and has no
login), unless `listen` names another interface. A Slurm cluster's scheduler has to be reached by its workers on
other nodes, but its dashboard listens on `listen` too (reach it through an SSH tunnel).
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from organseg.errors import InputError

#: The Dask worker resource that holds a worker's memory in bytes, and that tasks request.
MEMORY = "MEMORY"
KINDS = ("slurm",)


@dataclass(frozen=True)
class ClusterSpec:
    """How to reach workers; `distributed` is False for today's in-process run."""

    workers: int | None = None  #: start a local cluster of this many worker processes
    scheduler: str | None = None  #: address of a running Dask scheduler, e.g. tcp://host:8786
    kind: str | None = None  #: start a cluster through dask-jobqueue ("slurm")
    jobs: int = 1  #: batch jobs to submit (one worker each)
    cores: int = 1  #: cores per job (threads of its worker)
    memory: str = "8GB"  #: memory per job
    queue: str | None = None  #: the batch system's queue (Slurm partition)
    retries: int = 2  #: re-runs of a task whose worker died
    listen: str = "127.0.0.1"  #: the interface a local cluster listens on (scheduler, workers, dashboard), and
    #: a Slurm cluster's dashboard

    @property
    def distributed(self) -> bool:
        return bool(self.workers or self.scheduler or self.kind)

    def check(self) -> None:
        """One-line errors for options that do not go together."""
        if sum(map(bool, (self.workers, self.scheduler, self.kind))) > 1:
            raise InputError("give only one of --workers, --scheduler and --cluster")
        if self.kind is not None and self.kind not in KINDS:
            raise InputError(f"--cluster {self.kind}: unknown; use {', '.join(KINDS)}")
        if self.retries < 0:
            raise InputError(f"--retries must be 0 or more (got {self.retries})")


@dataclass
class Cluster:
    """A connected Dask client and what the run needs to know about its workers."""

    client: Any  #: distributed.Client
    worker_memory: float | None  #: MEMORY of the largest worker; None where workers declare none
    where: str  #: said to the user: what runs the tasks
    dashboard: str  #: the dashboard's URL, on the interface it listens on


def require_dask():
    """dask and distributed, or a one-line error saying how to install them."""
    try:
        import dask
        import distributed
    except ImportError as err:
        raise InputError(f"running on a Dask cluster needs Dask ({err}): pip install 'organseg[cluster]'") from None
    return dask, distributed


def local_memory() -> int:
    """Bytes of memory of this machine (the cgroup limit where lower), as Dask measures it."""
    from distributed.system import MEMORY_LIMIT
    return int(MEMORY_LIMIT)


def slurm_cluster(spec: ClusterSpec, **extra: Any):
    """A dask-jobqueue SLURMCluster whose jobs each run one worker of `cores` threads declaring its memory.

    Creating it submits nothing; `cluster.job_script()` shows the script each job runs.
    """
    require_dask()
    try:
        from dask.utils import parse_bytes
        from dask_jobqueue import SLURMCluster
    except ImportError as err:
        raise InputError(f"--cluster slurm needs dask-jobqueue ({err}): pip install 'organseg[cluster]'") from None
    try:
        memory = parse_bytes(spec.memory)
    except ValueError:
        raise InputError(f"--memory {spec.memory}: not an amount of memory; write e.g. 16GB") from None
    return SLURMCluster(cores=spec.cores, processes=1, memory=spec.memory, queue=spec.queue,
                        worker_extra_args=["--resources", f"{MEMORY}={memory}"],
                        scheduler_options={"dashboard_address": dashboard_address(spec.listen)}, **extra)


def slurm_dashboard(cluster: Any, listen: str) -> str:
    """The dashboard's URL of a `slurm_cluster`: dask-jobqueue's own link names the scheduler's host, where the
    dashboard does not listen."""
    return f"http://{_url_host(listen)}:{cluster.scheduler.http_server.port}/status"


def dashboard_address(listen: str) -> str:
    """host:port of the dashboard on the interface `listen`."""
    return f"{_url_host(listen)}:8787"


def _url_host(address: str) -> str:
    """The address as a URL's host (an IPv6 address in brackets)."""
    return f"[{address}]" if ":" in address else address


def _worker_memory(client: Any) -> float | None:
    declared = [w.get("resources", {}).get(MEMORY) for w in client.scheduler_info()["workers"].values()]
    declared = [float(m) for m in declared if m]
    return max(declared) if declared else None


@contextmanager
def connect(spec: ClusterSpec, timeout_s: float = 60.0) -> Iterator[Cluster]:
    """Start or reach the cluster the spec names; closes what it started on exit (also on Ctrl-C)."""
    spec.check()
    dask, distributed = require_dask()
    with ExitStack() as stack:
        stack.enter_context(dask.config.set({"distributed.scheduler.allowed-failures": spec.retries}))
        if spec.scheduler:
            try:
                client = stack.enter_context(distributed.Client(spec.scheduler, timeout=timeout_s))
                client.wait_for_workers(1, timeout=timeout_s)
            except (OSError, TimeoutError) as err:
                raise InputError(f"--scheduler {spec.scheduler}: no Dask scheduler with workers ({err})") from None
            yield Cluster(client, _worker_memory(client), f"the Dask scheduler at {spec.scheduler}",
                          client.dashboard_link)
            return
        if spec.kind == "slurm":
            cluster = stack.enter_context(slurm_cluster(spec))
            cluster.scale(jobs=spec.jobs)
            memory = float(dask.utils.parse_bytes(spec.memory))
            where = f"{spec.jobs} Slurm job(s) of {spec.cores} core(s) and {spec.memory}"
        else:
            memory = float(local_memory() // spec.workers)
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=spec.workers, threads_per_worker=1, processes=True, memory_limit=memory,
                resources={MEMORY: memory}, host=spec.listen, dashboard_address=dashboard_address(spec.listen)))
            where = f"{spec.workers} local worker process(es) of {memory / 2**30:.1f} GiB"
        client = stack.enter_context(distributed.Client(cluster))
        dashboard = client.dashboard_link
        if spec.kind == "slurm":
            dashboard = slurm_dashboard(cluster, spec.listen)
        yield Cluster(client, memory, where, dashboard)
