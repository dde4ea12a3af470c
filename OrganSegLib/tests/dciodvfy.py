"""dciodvfy (dicom3tools), the DICOM validator the export tests run: its report and its error lines."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

AVAILABLE = shutil.which("dciodvfy") is not None


def require() -> None:
    """Skip the calling test, with the reason, where dciodvfy is not installed."""
    if not AVAILABLE:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools; .ci/run installs it)")


def validate(path: Path) -> tuple[str, list[str]]:
    """dciodvfy's whole report on a DICOM file and the lines of it that are errors."""
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    report = run.stdout + run.stderr
    return report, [line for line in report.splitlines() if line.startswith("Error")]
