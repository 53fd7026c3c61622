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
    Parameter("exportSegmentation", "node", nodeClass="vtkMRMLSegmentationNode",
              help="segmentation exported as DICOM SEG + SR (an Apply result: a cine's ED or ES, or a volume's)"),
    Parameter("dicomSourceFolder", "path", "",
              help="folder of the input's DICOM files, when it was not loaded from Slicer's DICOM database"),
    Parameter("dicomOutputFolder", "path", "", help="folder the SEG + SR folders are written into"),
    Parameter("dicomwebUrl", "str", "",
              help="DICOMweb root of the server to send to (credentials from the environment only)"),
    Parameter("dicomSegFile", "path", "", help="a DICOM SEG file to read into a segmentation node"),
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
