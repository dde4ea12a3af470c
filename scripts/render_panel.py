"""Screenshot of the OrganSeg panel after a real run on the bundled example CT with the installed models.

The panel runs offscreen on slicer-core through the test harness (PyQt5), as in test_organseg_widget.py,
and the table view beside it shows what the layout's table view shows after the run.
Usage: QT_QPA_PLATFORM=offscreen python scripts/render_panel.py Resources/Screenshots/slicer_panel.png
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "OrganSeg" / "Testing" / "Python"))

from slicer_harness.application import Harness  # noqa: E402


def main(png: Path, organs: tuple[str, ...] = ("liver", "spleen")) -> None:
    h = Harness(REPO / "OrganSeg")
    h.loadVolume(REPO / "Testing" / "Data" / "example_ct.nii.gz", "example_ct")
    for key in organs:
        h.widget.organItems[key].setCheckState(0, 2)
    h.click(h.widget.ui.segmentButton)
    if not h.wait(lambda: h.widget.run is not None and h.widget.run.finished, seconds=1800):
        raise SystemExit("the run did not finish")
    print("\n".join(h.widget.run.messages))
    h.screenshot(png)
    h.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
