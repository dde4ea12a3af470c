"""A batch on a Dask cluster: one task per CT, each running the in-process batch's own step (`batch.run_case`).

A task carries the segmenter's `Settings` (small, picklable, hashable) and its class, not the Segmenter:
each worker process builds the batch's segmenter once from them and keeps it for every CT it is given. The
worker writes the case's result folder itself (atomically, as `organseg segment` does); the client collects
the rows and alone writes `batch_summary.csv`, after each finished case, in the order the CTs were given. Each task declares the
memory its CT needs (the segmenter's own estimate, from the image header) as the Dask resource MEMORY.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import SimpleITK as sitk

from organseg.cohort.batch import FAILED, BatchOptions, CaseRow, CaseSegmenter, run_case, write_summary
from organseg.cohort.cluster import Cluster, ClusterSpec, connect
from organseg.cohort.tasks import Task, run_tasks
from organseg.ct.dicom_series import dicom_header
from organseg.method.memory import memory_needed
from organseg.method.settings import Settings
from organseg.results.folder import holds_results


@lru_cache(maxsize=2)
def worker_segmenter(kind: type[CaseSegmenter], settings: Settings) -> CaseSegmenter:
    """The batch's segmenter in this worker process, built for its first CT and kept for the others."""
    return kind(settings)


def segment_on_worker(kind: type[CaseSegmenter], settings: Settings, ct: Path, outdir: Path,
                      options: BatchOptions, case: str) -> CaseRow:
    """The task: one CT into its result folder, its summary row back to the client."""
    return run_case(ct, outdir, worker_segmenter(kind, settings), options, case)


def header_memory(ct: Path) -> float:
    """Bytes segmenting the CT needs, from its header; 0 where unreadable (the worker then reports why).

    A DICOM folder counts every file in it as a slice (an upper bound where it holds other files).
    """
    try:
        if ct.is_dir():
            files = [p for p in ct.rglob("*") if p.is_file()]
            header = next(h for h in map(dicom_header, files) if h is not None and "Rows" in h and "Columns" in h)
            return float(memory_needed((int(header.Columns), int(header.Rows), len(files)),
                                       int(header.BitsAllocated) // 8))
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(ct))
        reader.ReadImageInformation()
        pixel_bytes = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID()).GetSizeOfPixelComponent()
        return float(memory_needed(reader.GetSize(), pixel_bytes))
    except (RuntimeError, OSError, StopIteration, AttributeError, ValueError):
        return 0.0


def run_batch_on_cluster(cases: dict[Path, str], outdir: Path, segmenter: CaseSegmenter, options: BatchOptions,
                         spec: ClusterSpec, started: Callable[[Cluster], None] | None = None) -> Iterator[CaseRow]:
    """`batch.run_batch` on a Dask cluster: yields each CT's row as it finishes, rewriting the summary after each.

    A CT done before gets its row here, without a task; a task lost on the cluster becomes a failed row.
    `started(cluster)` is called once the cluster is up (to say where the work runs and the dashboard link).
    """
    outdir.mkdir(parents=True, exist_ok=True)
    order = {case: i for i, case in enumerate(cases.values())}
    rows: dict[str, CaseRow] = {}

    def finished(row: CaseRow) -> CaseRow:
        rows[row.case] = row
        write_summary(sorted(rows.values(), key=lambda r: order[r.case]), outdir)
        return row

    todo = []
    for ct, case in cases.items():
        if not options.overwrite and holds_results(outdir / case):
            yield finished(run_case(ct, outdir / case, segmenter, options, case))
        else:
            args = (type(segmenter), segmenter.settings, ct, outdir / case, options, case)
            todo.append(Task(case, segment_on_worker, args, header_memory(ct)))
    if not todo:
        return
    with connect(spec) as cluster:
        if started is not None:
            started(cluster)
        for task, row, lost in run_tasks(cluster, todo):
            ct = task.args[2]
            yield finished(row if lost is None else CaseRow(task.name, str(ct), FAILED, message=f"{ct}: {lost}"))
