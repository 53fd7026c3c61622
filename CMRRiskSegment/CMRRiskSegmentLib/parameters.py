"""Every choice of CMRRisk Segment, kept in the module's parameter node (saved with the scene).

The ``.ui`` widgets carry ``SlicerParameterName`` properties with these names; inside Slicer
:func:`parameterNodeClass` is the ``parameterNodeWrapper`` class that binds them.
"""

from cmrrisk.mrml.parameters import Parameter, open_parameters, wrapper_class

MODULE = "CMRRiskSegment"
#: phase choice of a cine sequence
ALL_PHASES, ED_ES = "All phases", "ED and ES"

PARAMETERS = (
    Parameter("inputNode", "node", nodeClass="vtkMRMLScalarVolumeNode|vtkMRMLSequenceNode", help="volume or cine sequence to segment"),
    Parameter("phases", "str", ALL_PHASES, help="a sequence: every phase, or the ED and ES phases"),
    Parameter("edPhase", "int", 0),
    Parameter("esPhase", "int", 0),
    Parameter("model", "str", "auto", help="bundled model name or auto"),
    Parameter("device", "str", "cpu"),
    Parameter("qcSegmentation", "node", nodeClass="vtkMRMLSegmentationNode",
              help="segmentation checked with the image by Check quality"),
)

_WRAPPER = []


def parameterNodeClass():
    """The ``parameterNodeWrapper`` class (inside Slicer; None elsewhere), made once."""
    if not _WRAPPER:
        _WRAPPER.append(wrapper_class("CMRRiskSegmentParameterNode", PARAMETERS))
    return _WRAPPER[0]


def parameters(scene, wrapped=False):
    """The module's parameters in ``scene`` (defaults written where unset): the
    ``parameterNodeWrapper`` instance with ``wrapped`` inside Slicer, else a plain
    :class:`cmrrisk.mrml.parameters.ParameterSet`."""
    return open_parameters(scene, MODULE, PARAMETERS, parameterNodeClass() if wrapped else None)
