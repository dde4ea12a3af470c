"""A batch on a Dask cluster: one task per CT, each running the in-process batch's own step (`batch.run_case`).

A task carries `SegmenterSettings` (small, picklable, hashable), not a Segmenter: each worker process builds
the batch's segmenter once from them and keeps it for every CT it is given. The worker writes the case's
result folder itself (atomically, as `organseg segment` does); the client collects the rows and alone writes
`batch_summary.csv`, after each finished case, in the order the CTs were given. Each task declares the
memory its CT needs (the segmenter's own estimate, from the image header) as the Dask resource MEMORY.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import SimpleITK as sitk

from organseg.batch import FAILED, BatchOptions, CaseRow, run_case, write_summary
from organseg.cluster import Cluster, ClusterSpec, connect
from organseg.cluster_tasks import Task, run_tasks
from organseg.io import memory_needed
from organseg.errors import InputError
from organseg.model_package import ModelStore
from organseg.outputs import holds_results
from organseg.paths import itk_path
from organseg.segmenter import Segmenter


@dataclass(frozen=True)
class SegmenterSettings:
    """What a worker needs to build the same Segmenter as the client."""

    models: tuple[str, ...]
    device: str
    engine: str
    batch_size: int
    postprocess: bool
    anchor_rules: tuple[tuple[str, bool], ...] | None
    strategy: str

    @classmethod
    def of(cls, s: Segmenter) -> "SegmenterSettings":
        rules = tuple(sorted(s.anchor_rules.items())) if s.anchor_rules is not None else None
        return cls(tuple(map(str, s.store.dirs)), s.device, s.engine, s.batch_size, s.postprocess, rules, s.strategy)


@lru_cache(maxsize=2)
def worker_segmenter(settings: SegmenterSettings) -> Segmenter:
    """The batch's segmenter in this worker process, built for its first CT and kept for the others."""
    rules = dict(settings.anchor_rules) if settings.anchor_rules is not None else None
    return Segmenter(ModelStore([Path(d) for d in settings.models]), settings.device, settings.engine,
                     settings.batch_size, settings.postprocess, rules, settings.strategy)


def segment_on_worker(settings: SegmenterSettings, ct: Path, outdir: Path, options: BatchOptions,
                      case: str) -> CaseRow:
    """The task: one CT into its result folder, its summary row back to the client."""
    return run_case(ct, outdir, worker_segmenter(settings), options, case)


def header_memory(ct: Path) -> float:
    """Bytes segmenting the CT needs, from its header; 0 where unreadable (the worker then reports why).

    A DICOM folder counts every file in it as a slice (an upper bound where it holds other files).
    """
    try:
        if ct.is_dir():
            files = [p for p in ct.rglob("*") if p.is_file()]
            header = next(h for h in map(_dicom_header, files) if h is not None)
            return float(memory_needed((int(header.Columns), int(header.Rows), len(files)),
                                       int(header.BitsAllocated) // 8))
        reader = sitk.ImageFileReader()
        reader.SetFileName(itk_path(ct))
        reader.ReadImageInformation()
        pixel_bytes = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID()).GetSizeOfPixelComponent()
        return float(memory_needed(reader.GetSize(), pixel_bytes))
    except (RuntimeError, OSError, StopIteration, AttributeError, ValueError, InputError):
        return 0.0


def _dicom_header(path: Path):
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - an unreadable file is simply not a slice
        return None
    return header if "Rows" in header and "Columns" in header else None


def run_batch_on_cluster(cases: dict[Path, str], outdir: Path, segmenter: Segmenter, options: BatchOptions,
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
            todo.append(Task(case, segment_on_worker, (SegmenterSettings.of(segmenter), ct, outdir / case, options,
                                                       case), header_memory(ct)))
    if not todo:
        return
    with connect(spec) as cluster:
        if started is not None:
            started(cluster)
        for task, row, lost in run_tasks(cluster, todo):
            ct = task.args[1]
            yield finished(row if lost is None else CaseRow(task.name, str(ct), FAILED, message=f"{ct}: {lost}"))
