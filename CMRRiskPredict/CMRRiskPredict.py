"""CMRRisk Predict: image-derived features (clinical indices, optional radiomics, deep features),
predictions of a trained model, training from a cohort manifest, reports and explanations.

A thin shell (Module, Widget, Test); the parameters, Logic, widget body and self-test are in
``CMRRiskPredictLib``. From the Python console::

    logic = slicer.util.getModuleLogic("CMRRiskPredict")
    out = logic.predictStudy("my_model", edNode, esNode, covariates="age=61, sex=F")
    job = logic.startTraining("cohort.csv", "survival", "my_model")   # a separate process
"""

import os
import sys

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

# Developer mode (module path added by hand): the cmrrisk package from the source tree. An
# installed extension has it in Slicer's scripted-modules folder already.
_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "CMRRiskExtension")
if os.path.isdir(os.path.join(_SOURCE, "cmrrisk")) and _SOURCE not in sys.path:
    sys.path.append(_SOURCE)

from CMRRiskPredictLib.logic import CMRRiskPredictLogic  # noqa: E402,F401
from CMRRiskPredictLib.selftest import PredictSelfTest  # noqa: E402
from CMRRiskPredictLib.widget import ACTION_BUTTONS, INPUT_WIDGETS, PredictWidgetMixin  # noqa: E402,F401

try:
    from slicer.i18n import tr as _
    from slicer.i18n import translate
except ImportError:  # slicer-core (tests): no translation
    def _(text):
        return text

    def translate(context, text):
        return text

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
DOCS = "https://github.com/cmrrisk/CMRRisk/blob/main/docs/how-to/slicer-module.md"


def missing_packages():
    """Python packages the module needs that are not importable in this Slicer (radiomics is
    optional and not listed)."""
    from cmrrisk.mrml.moduleutils import missing_for

    return missing_for(MODULE_DIR, also=("torch",))


class CMRRiskPredict(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("CMRRisk Predict")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Cardiac")]
        # survival curves are shown with the Plots module; results are table and segmentation nodes
        self.parent.dependencies = ["Plots", "Tables", "Segmentations"]
        self.parent.contributors = ["CMRRisk developers"]
        self.parent.helpText = _(
            "Image-derived features of a cardiac MRI study: clinical indices, deep features and, "
            "when pyradiomics is installed, radiomic features; missing segmentations are computed "
            "with the bundled models. Prediction with a trained model (risk, risk group and "
            "survival curve, or class probabilities), training from a cohort manifest and the "
            "model's report (both in a separate process, so Slicer stays responsive), and "
            "explanations (heatmaps, attributions, a short text). Research use only."
        ) + f' <a href="{DOCS}">' + _("Documentation") + "</a>"
        self.parent.acknowledgementText = _(
            "Radiomics: van Griethuysen et al., Cancer Research 77(21):e104-e107, 2017. "
            "Bundled models trained on ACDC (Bernard et al., IEEE TMI 2018) and EMIDEC "
            "(Lalande et al., Data 2020).")


class CMRRiskPredictWidget(PredictWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Thin GUI bound to the parameter node; the body is ``CMRRiskPredictLib.widget``."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.setupWidget(MODULE_DIR)


class CMRRiskPredictTest(PredictSelfTest):
    """Slicer's test entry (the methods are in ``CMRRiskPredictLib.selftest``)."""
