"""CMRRisk Segment: deep-learning segmentation of short-axis cine and LGE MRI in 3D Slicer.

A thin shell (Module, Widget, Test); the parameters, Logic, widget body and self-test are in
``CMRRiskSegmentLib``. From the Python console::

    logic = slicer.util.getModuleLogic("CMRRiskSegment")
    result = logic.process(volumeNode, model="auto")   # what Apply does
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

from CMRRiskSegmentLib.logic import CMRRiskSegmentLogic  # noqa: E402
from CMRRiskSegmentLib.selftest import SegmentSelfTest  # noqa: E402
from CMRRiskSegmentLib.widget import SegmentWidgetMixin  # noqa: E402

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
    """Python packages the module needs that are not importable in this Slicer."""
    from cmrrisk.mrml.moduleutils import missing_for

    return missing_for(MODULE_DIR, also=("torch",))


class CMRRiskSegment(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("CMRRisk Segment")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Cardiac")]
        self.parent.dependencies = ["Sequences", "Segmentations"]
        self.parent.contributors = ["CMRRisk developers"]
        self.parent.helpText = _(
            "Deep-learning segmentation of short-axis cine MRI (LV blood pool, LV myocardium, RV "
            "blood pool, with clinical indices from ED and ES) and of LGE (myocardium, scar, "
            "microvascular obstruction, with scar burden and transmurality per AHA segment). The "
            "'auto' model picks cine or lge from the series' DICOM headers or name. Research use "
            "only.") + f' <a href="{DOCS}">' + _("Documentation") + "</a>"
        self.parent.acknowledgementText = _(
            "The bundled cine model was trained on the ACDC dataset (Bernard et al., IEEE TMI "
            "37(11):2514-2525, 2018), the bundled lge model on the EMIDEC dataset (Lalande et al., "
            "Data 5(4):89, 2020).")
        slicer.app.connect("startupCompleted()", _registerSampleData)


def _registerSampleData():
    from cmrrisk.mrml.sampledata import register_sample_data

    register_sample_data(os.path.join(MODULE_DIR, "Resources", "Icons", "CMRRiskSegment.png"))


class CMRRiskSegmentWidget(SegmentWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Thin GUI bound to the parameter node; the body is ``CMRRiskSegmentLib.widget``."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.setupWidget(MODULE_DIR)


class CMRRiskSegmentTest(SegmentSelfTest):
    """Slicer's test entry (the methods are in ``CMRRiskSegmentLib.selftest``)."""
