"""CMRRisk Predict's self-test (Reload and Test, or Slicer's test runner).

Slicer's CTest runner calls each ``test_*`` method directly: every method first skips itself
(``unittest.SkipTest`` naming the missing packages) when what it needs is not installed. With
the packages each checks something whose answer is known.
"""

import os
import tempfile

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from cmrrisk.mrml.moduleutils import skip_unless

from .logic import CMRRiskPredictLogic

#: what the tests need beyond numpy / vtk (Slicer's own); radiomics is optional and not needed
FEATURES = ("torch", "monai", "scipy", "pandas")
TRAINING = ("torch", "pandas", "sklearn", "sksurv", "lifelines", "pycox", "torchtuples", "safetensors")


def covariateCohort(path, n=60, seed=0):
    """A covariates-only cohort manifest (subject, age, sex, diabetes, time, event) whose hazard
    rises with age: what a small Cox model can learn in seconds."""
    import csv

    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject", "age", "sex", "diabetes", "time", "event"])
        for i in range(n):
            age, sex, diabetes = rng.normal(60, 10), int(rng.integers(0, 2)), int(rng.integers(0, 2))
            t = rng.exponential(5.0 * np.exp(-(age - 60) / 8.0))
            w.writerow([f"S{i:03d}", round(age, 1), sex, diabetes, round(min(t, 8.0), 3), int(t < 8.0)])
    return path


class PredictSelfTest(ScriptedLoadableModuleTest):

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        for name in ("test_indices_from_given_segmentation", "test_train_covariate_model_in_a_process",
                     "test_explain_on_the_sample_study_in_a_process"):
            self.setUp()
            getattr(self, name)()

    def test_indices_from_given_segmentation(self):
        """Volumes of a phantom whose answer is known (no radiomics, no deep features)."""
        skip_unless(self, FEATURES, "The features test")
        import numpy as np

        from cmrrisk import mrml
        from cmrrisk.image import Volume

        shape = (6, 64, 64)
        zz, yy, xx = np.mgrid[:shape[0], :shape[1], :shape[2]]
        r = np.hypot(yy - 32, xx - 32)
        labels, nodes = {}, {}
        for phase, radius in (("ed", 12), ("es", 8)):
            lab = np.zeros(shape, np.uint8)
            lab[(r < radius + 5) & (zz > 0) & (zz < 5)] = 2
            lab[(r < radius) & (zz > 0) & (zz < 5)] = 1
            labels[phase] = lab
            img = (lab == 1) * 300.0 + (lab == 2) * 80.0 + 20.0
            vol = mrml.volume_to_node(slicer.mrmlScene, Volume(img.astype(np.float32), np.diag([1.5, 1.5, 8.0, 1.0])), phase)
            nodes[phase] = (vol, mrml.labels_to_segmentation(slicer.mrmlScene, lab, vol, f"{phase} seg"))
        table = CMRRiskPredictLogic().computeFeatures(nodes["ed"][0], nodes["es"][0], nodes["ed"][1],
                                                      nodes["es"][1], radiomics=False, deep=False)
        values = {table.GetCellText(i, 0): float(table.GetCellText(i, 4)) for i in range(table.GetNumberOfRows())}
        voxel_ml = 1.5 * 1.5 * 8.0 / 1000.0
        self.assertAlmostEqual(values["lv_edv_ml"], (labels["ed"] == 1).sum() * voxel_ml, places=3)
        self.assertAlmostEqual(values["lv_esv_ml"], (labels["es"] == 1).sum() * voxel_ml, places=3)
        self.delayDisplay("Features test passed")

    def test_train_covariate_model_in_a_process(self):
        """A Cox model on covariates trained by ``cmrrisk train`` in a separate process: progress
        read, the model directory written, its cross-validation metrics added as a table."""
        skip_unless(self, TRAINING, "The training test")
        work = tempfile.mkdtemp()
        manifest = covariateCohort(os.path.join(work, "cohort.csv"))
        seen = []
        job = CMRRiskPredictLogic().startTraining(manifest, "survival", os.path.join(work, "model"), model="cox",
                                                  cv=3, onProgress=lambda f, m: seen.append(f))
        self.assertEqual(job.wait(timeout=300), "succeeded", job.error)
        self.assertTrue(seen and seen[-1] == 1.0)
        table = job.results["metrics"]
        metrics = [table.GetCellText(i, 0) for i in range(table.GetNumberOfRows())]
        self.assertIn("c_index_harrell", metrics)
        c = float(table.GetCellText(metrics.index("c_index_harrell"), 1))
        self.assertGreater(c, 0.6)  # age drives the hazard: better than chance
        self.delayDisplay(f"Training test passed (cross-validated C {c:.3f})")

    def test_explain_on_the_sample_study_in_a_process(self):
        """A covariate Cox model explained for the sample study in a separate process: one
        attribution per covariate, age (the hazard's driver) the largest, and a sentence."""
        skip_unless(self, TRAINING + ("captum", "nibabel"), "The explanation test")
        from cmrrisk.mrml.sampledata import load_sample_study

        work = tempfile.mkdtemp()
        manifest = covariateCohort(os.path.join(work, "cohort.csv"))
        logic = CMRRiskPredictLogic()
        modelDir = os.path.join(work, "model")
        job = logic.startTraining(manifest, "survival", modelDir, model="cox", cv=0)
        self.assertEqual(job.wait(timeout=300), "succeeded", job.error)
        nodes = load_sample_study(slicer.mrmlScene, segmentations=False)
        job = logic.startExplanation(modelDir, edVolumeNode=nodes["cine_ed"], esVolumeNode=nodes["cine_es"],
                                     covariates="age=75, sex=1, diabetes=0", method="ig", k=0, showOverlay=False)
        self.assertEqual(job.wait(timeout=300), "succeeded", job.error)
        table = job.results["attributions"]
        self.assertEqual(table.GetNumberOfRows(), 3)
        values = {table.GetCellText(i, 0): abs(float(table.GetCellText(i, 2))) for i in range(3)}
        self.assertEqual(max(values, key=values.get), "age")
        self.assertTrue(job.results["text"])
        self.delayDisplay("Explanation test passed")
