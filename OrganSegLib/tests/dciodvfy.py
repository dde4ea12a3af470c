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


#: What dciodvfy says of an empty Patient ID or Study ID: an export copies both from its CT (a planning system files
#: it with the CT by them), so a CT without them gives an export without them, and the same warning.
_COPIED_FROM_CT = ("Missing attribute or value that would be needed to build DICOMDIR - Patient ID",
                   "Missing attribute or value that would be needed to build DICOMDIR - Study ID")


def problems(path: Path, ct_file: Path) -> list[str]:
    """dciodvfy's errors and warnings on an export, but for the empty Patient ID and Study ID that the CT slice it
    references has too (checked on that slice, not assumed)."""
    report, errors = validate(path)
    ct_report = validate(ct_file)[0]
    warnings = [line for line in report.splitlines() if line.startswith("Warning")
                and not (line.endswith(_COPIED_FROM_CT) and line in ct_report)]
    return errors + warnings
