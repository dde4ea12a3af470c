"""OrganSeg's self-test inside 3D Slicer ("Reload and Test"), on the example CT with the installed models.

It needs the application (volumes are loaded through slicer.util); the pytest suite covers the same paths on
slicer-core, and the panel itself through the harness in OrganSeg/Testing/Python/slicer_harness.
"""
from __future__ import annotations

import os
from pathlib import Path

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest


class OrganSegTest(ScriptedLoadableModuleTest):
    """Self-test in Slicer on the real example CT with the installed models."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_edit_recompute()
        self.setUp()
        self.test_cancel_keeps_consistent_state()

    def _example_ct(self):
        here = Path(__file__).resolve().parents[1]
        candidates = [os.environ.get("ORGANSEG_TEST_CT", ""), here.parent / "Testing" / "Data" / "example_ct.nii.gz"]
        for candidate in candidates:
            if candidate and Path(candidate).is_file():
                return slicer.util.loadVolume(str(candidate))
        raise FileNotFoundError(f"example CT not found (tried {', '.join(map(str, candidates[1:]))}); "
                                "set ORGANSEG_TEST_CT to a CT file")

    def _organs(self):
        from organseg.method.model_package import ModelStore
        organs = [key for key in ("liver", "spleen", "kidneys") if key in ModelStore().available()]
        self.assertTrue(organs, "no liver, spleen or kidneys model installed")
        return organs

    def test_segment_edit_recompute(self):
        import numpy as np
        from organseg.catalogue import organ
        from organseg.results.result import OrganMask
        from organseg_slicer.segments import organ_segments, segment_mask, set_organ_segment
        from organseg_slicer.table import table_rows

        volume = self._example_ct()
        from organseg.segmenter import Settings
        from organseg_slicer.logic import OrganSegLogic

        logic = OrganSegLogic()
        run = logic.run(volume, self._organs(), Settings(device="cpu"))
        self.assertTrue(run.job.result is not None, run.messages[-1])
        segments = organ_segments(run.segmentation_node)
        self.assertEqual(sorted(segments.values()), sorted(run.plan.organs))
        rows = table_rows(run.table_node)
        self.assertEqual([r["voxels"] for r in rows], [s["voxels"] for s in run.job.result.stats])
        sh = slicer.mrmlScene.GetSubjectHierarchyNode()
        self.assertEqual(sh.GetItemParent(sh.GetItemByDataNode(run.segmentation_node)),
                         sh.GetItemParent(sh.GetItemByDataNode(volume)))
        segment_id, key = next(iter(segments.items()))
        mask = segment_mask(run.segmentation_node, segment_id, volume)
        self.assertTrue(mask.any(), f"{key}: the bundled model found nothing on the example CT")
        first = int(np.flatnonzero(mask.any(axis=(1, 2)))[0])
        removed = int(mask[first].sum())
        mask[first] = False
        set_organ_segment(run.segmentation_node, organ(key), OrganMask.from_full(mask), volume)
        logic.recomputeTable(run.segmentation_node)
        self.assertEqual(table_rows(run.table_node)[0]["voxels"], rows[0]["voxels"] - removed)

    def test_cancel_keeps_consistent_state(self):
        from organseg_slicer.segments import organ_segments

        from organseg.segmenter import Settings
        from organseg_slicer.logic import OrganSegLogic

        volume = self._example_ct()
        logic = OrganSegLogic()
        run = logic.start(volume, self._organs(), Settings(device="cpu"))
        run.job.cancel()
        while not run.finished:
            run.job.wait(0.05)
            logic.process(run)
        self.assertTrue(run.job.cancelled or run.job.result is not None)
        self.assertEqual(sorted(organ_segments(run.segmentation_node).values()), sorted(run.done))
        self.assertEqual(run.table_node.GetNumberOfRows(), len(run.done))
