"""CMRRisk Segment's self-test (Reload and Test, or Slicer's test runner).

Slicer's CTest runner calls each ``test_*`` method directly: every method first skips itself
(``unittest.SkipTest`` naming the missing packages) when what it needs is not installed, so a
build machine without torch reports skips, not failures. With the packages each method checks
something whose answer is known, on the sample study (``cmrrisk.mrml.sampledata``) or a phantom.
"""

import os
import tempfile

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from cmrrisk.mrml.moduleutils import skip_unless

from .logic import CMRRiskSegmentLogic

#: what each test needs beyond numpy / vtk (Slicer's own)
NETWORK = ("torch", "monai", "safetensors", "scipy")
MEASURES = ("scipy",)


class SegmentSelfTest(ScriptedLoadableModuleTest):

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        for name in ("test_sample_study", "test_qc_volume", "test_scar_tables", "test_segment_sample_study"):
            self.setUp()
            getattr(self, name)()

    def test_sample_study(self):
        """The sample study loads as three volumes with their reference segmentations."""
        skip_unless(self, ("nibabel",), "The sample study")
        from cmrrisk.mrml.sampledata import load_sample_study

        nodes = load_sample_study(slicer.mrmlScene)
        for role in ("cine_ed", "cine_es", "lge"):
            self.assertTrue(nodes[role].IsA("vtkMRMLScalarVolumeNode"))
            self.assertTrue(nodes[f"{role}_seg"].GetSegmentation().GetNumberOfSegments() >= 3)
        self.delayDisplay("Sample study test passed")

    def test_qc_volume(self):
        """Quality checks of a stack with a missing (zero-filled) slice: excluded, reason named."""
        skip_unless(self, MEASURES, "The quality-check test")
        import numpy as np

        img = np.full((8, 64, 64), 40.0, np.float32)
        y, x = np.mgrid[0:64, 0:64]
        img[:, np.hypot(y - 32, x - 32) < 12] = 300.0
        img += np.random.default_rng(0).normal(0, 5, img.shape).astype(np.float32)
        img[4] = 0.0
        volumeNode = slicer.util.addVolumeFromArray(img, name="qc phantom")
        volumeNode.SetSpacing(1.5, 1.5, 8.0)
        table = CMRRiskSegmentLogic.qcVolume(volumeNode)
        self.assertEqual(table.GetAttribute("CMRRisk.qcStatus"), "exclude")
        self.assertEqual(table.GetTable().GetValue(0, 0).ToString(), "missing_slice")
        self.delayDisplay("QC test passed")

    def test_scar_tables(self):
        """AHA-segment table of a ring phantom whose answer is known: scar filling the mid
        anteroseptal sector transmurally."""
        skip_unless(self, MEASURES, "The scar test")
        import numpy as np

        from cmrrisk import labels as L
        from cmrrisk import mrml

        z, y, x = np.indices((9, 64, 64)).astype(float)
        r = np.hypot(y - 31.5, x - 31.5)
        angle = np.degrees(np.arctan2(y - 31.5, x - 31.5))
        labels = np.where(r < 10, L.LV_BLOOD_POOL, np.where(r < 16, L.LV_MYOCARDIUM, 0)).astype(np.uint8)
        scar = (labels == L.LV_MYOCARDIUM) & (z >= 3) & (z <= 5) & (angle >= 0) & (angle < 60)
        labels[scar] = L.SCAR
        image = np.where(labels == L.SCAR, 200.0, np.where(labels == L.LV_MYOCARDIUM, 60.0, 150.0))
        image += np.random.default_rng(0).normal(0, 4, image.shape)
        volumeNode = slicer.util.addVolumeFromArray(image.astype(np.float32), name="scar phantom")
        segNode = mrml.labels_to_segmentation(slicer.mrmlScene, labels, volumeNode, "scar phantom segmentation",
                                              structures=L.LGE_LABELS)
        result = CMRRiskSegmentLogic.scarAnalysis(segNode, volumeNode, reference_angle_deg=0,
                                                  septum_direction=1, base="first")
        table = result["segmentsTable"].GetTable()
        self.assertEqual(table.GetNumberOfRows(), 16)
        self.assertAlmostEqual(table.GetValue(7, 5).ToDouble(), 100.0, places=3)  # segment 8 scar %
        self.assertEqual(result["measures"]["aha"]["summary"]["n_segments_transmurality_gt75"], 1)
        self.delayDisplay("Scar test passed")

    def test_segment_sample_study(self):
        """The bundled cine model on the sample study's ED frame: the three cine structures,
        the LV blood pool overlapping the generator's reference (Dice > 0.7), and the result
        surviving a scene save and load (inside Slicer)."""
        skip_unless(self, NETWORK + ("nibabel",), "The segmentation test")
        import numpy as np

        from cmrrisk import labels as L
        from cmrrisk import mrml
        from cmrrisk.mrml.sampledata import load_sample_study

        nodes = load_sample_study(slicer.mrmlScene)
        volumeNode = nodes["cine_ed"]
        segNode = CMRRiskSegmentLogic().segmentVolume(volumeNode, model="cine")
        seg = segNode.GetSegmentation()
        names = sorted(seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments()))
        self.assertEqual(names, sorted(L.SEGMENTS[v][0] for v in L.CINE_LABELS))
        got = mrml.segmentation_to_labels(segNode, volumeNode) == L.LV_BLOOD_POOL
        ref = mrml.segmentation_to_labels(nodes["cine_ed_seg"], volumeNode) == L.LV_BLOOD_POOL
        dice = 2.0 * np.logical_and(got, ref).sum() / max(1, got.sum() + ref.sum())
        self.assertGreater(dice, 0.7)
        if getattr(slicer, "app", None) is not None:  # saveScene / loadScene need the application
            path = os.path.join(tempfile.mkdtemp(), "scene.mrb")
            self.assertTrue(slicer.util.saveScene(path))
            slicer.mrmlScene.Clear(0)
            slicer.util.loadScene(path)
            self.assertIsNotNone(slicer.util.getFirstNodeByClassByName("vtkMRMLSegmentationNode", segNode.GetName()))
        self.delayDisplay(f"Segmentation test passed (LV blood pool Dice {dice:.3f})")
