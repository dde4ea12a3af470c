"""Running independent tasks (one CT, one organ) on a Dask cluster, results streamed back as they finish.

Tasks are handed to the scheduler only as fast as workers have threads free, so that a worker that dies
takes down (and counts a failure against) only the tasks it was running, not a queue of waiting ones; new
workers (Slurm jobs starting) are used as they join. Each task's result comes back to the client as soon as it
is finished; a task whose workers kept dying, or that needs more memory than any worker has, comes back with a
one-line reason instead.
"""
from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from organseg.cohort.cluster import MEMORY, Cluster

#: Seconds between looks at the cluster for newly joined workers while tasks run.
POLL_S = 2.0


@dataclass
class Task:
    """One unit of work: `fn(*args)` run on a worker."""

    name: str  #: shown on the dashboard and in messages (a case or an organ)
    fn: Callable[..., Any]
    args: tuple
    memory: float = 0.0  #: bytes the task needs at its peak


def _capacity(client: Any) -> int:
    return max(1, sum(client.nthreads().values()))


def run_tasks(cluster: Cluster, tasks: list[Task]) -> Iterator[tuple[Task, Any, str | None]]:
    """Run every task once; yield (task, result, None), or (task, None, why it was lost), in finishing order.

    Closing the generator early (Ctrl-C in the client) cancels the tasks still queued or running.
    """
    from distributed import wait
    from distributed.client import FuturesCancelledError

    client = cluster.client
    pending, running = deque(tasks), {}
    try:
        while pending or running:
            while pending and len(running) < _capacity(client):
                task = pending.popleft()
                if cluster.worker_memory is not None and task.memory > cluster.worker_memory:
                    yield task, None, (f"needs about {task.memory / 2**30:.1f} GiB of memory but the largest worker "
                                       f"has {cluster.worker_memory / 2**30:.1f} GiB; give workers more memory")
                    continue
                resources = {MEMORY: task.memory} if cluster.worker_memory is not None else None
                future = client.submit(task.fn, *task.args, key=f"{task.name}-{uuid.uuid4().hex[:8]}",
                                       resources=resources, pure=False)
                running[future] = task
            try:
                done = wait(list(running), timeout=POLL_S, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                continue
            except FuturesCancelledError:  # the scheduler went away: the cancelled ones are done too
                done = [f for f in running if f.status != "pending"]
            for future in done:
                task = running.pop(future)
                yield (task, *_outcome(future))
                future.release()
    finally:
        for future in running:
            future.cancel()


def _outcome(future: Any) -> tuple[Any, str | None]:
    from distributed import KilledWorker

    try:
        return future.result(), None
    except KilledWorker as err:
        return None, (f"the worker running it died {err.allowed_failures + 1} time(s) (killed or out of memory); "
                      "gave up")
    except Exception as err:  # noqa: BLE001 - a task's own errors are its result; this is the cluster failing
        return None, f"lost on the cluster: {type(err).__name__}: {err}"
