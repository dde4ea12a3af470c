"""A segmentation running in a background thread, polled from Slicer's main thread.

The worker thread only computes (organseg.Segmenter); it never touches MRML. Progress reports, the result
and any error are handed over through a queue that the main thread drains with `poll()`, which is where
segments are written into the scene.
"""
from __future__ import annotations

import logging
import queue
import threading

import SimpleITK as sitk

from organseg.errors import OrganSegError
from organseg.results.result import Progress, Result
from organseg.segmenter import Cancelled, Segmenter


class SegmentationJob:
    """Runs `segmenter.segment(image, organs)` in a daemon thread with progress and cancel."""

    def __init__(self, segmenter: Segmenter, image: sitk.Image, organs: list[str], source: str) -> None:
        self._events: queue.Queue[Progress] = queue.Queue()
        self._cancel = threading.Event()
        self.result: Result | None = None
        self.error: str | None = None  #: one-line message when the run failed
        self.cancelled = False
        self._thread = threading.Thread(target=self._run, args=(segmenter, image, organs, source),
                                        name="OrganSeg", daemon=True)

    def start(self) -> "SegmentationJob":
        self._thread.start()
        return self

    def _run(self, segmenter: Segmenter, image: sitk.Image, organs: list[str], source: str) -> None:
        try:
            self.result = segmenter.segment(image, organs, progress=self._events.put,
                                            cancel=self._cancel.is_set, source=source)
        except Cancelled:
            self.cancelled = True
        except OrganSegError as err:
            self.error = str(err)
        except Exception as err:  # noqa: BLE001 - reported to the user, full traceback to the log
            logging.exception("OrganSeg: segmentation failed")
            self.error = f"segmentation failed: {type(err).__name__}: {err}"

    def cancel(self) -> None:
        """Ask the worker to stop at its next batch boundary; finished organs are kept."""
        self._cancel.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end; True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def poll(self) -> list[Progress]:
        """Progress reports that arrived since the last poll, oldest first."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events
