"""Every choice of CMRRisk Predict, kept in the module's parameter node (saved with the scene).

The ``.ui`` widgets carry ``SlicerParameterName`` properties with these names; inside Slicer
:func:`parameterNodeClass` is the ``parameterNodeWrapper`` class that binds them.
"""

from cmrrisk.mrml.parameters import Parameter, open_parameters, wrapper_class

MODULE = "CMRRiskPredict"

PARAMETERS = (
    # the study
    Parameter("edVolume", "node", nodeClass="vtkMRMLScalarVolumeNode"),
    Parameter("edSegmentation", "node", nodeClass="vtkMRMLSegmentationNode"),
    Parameter("esVolume", "node", nodeClass="vtkMRMLScalarVolumeNode"),
    Parameter("esSegmentation", "node", nodeClass="vtkMRMLSegmentationNode"),
    Parameter("lgeVolume", "node", nodeClass="vtkMRMLScalarVolumeNode"),
    Parameter("lgeSegmentation", "node", nodeClass="vtkMRMLSegmentationNode"),
    Parameter("bsa", "float", 0.0, help="body surface area in m2 (0: unknown)"),
    Parameter("radiomics", "bool", True),
    Parameter("deep", "bool", True),
    Parameter("device", "str", "cpu"),
    # prediction and explanation
    Parameter("modelDir", "path", ""),
    Parameter("covariates", "str", "", help="name=value, ..."),
    Parameter("horizons", "str", "", help="times, comma-separated"),
    Parameter("explainMethod", "str", "ig"),
    Parameter("referenceManifest", "path", ""),
    Parameter("k", "int", 5, help="similar subjects listed"),
    # training
    Parameter("manifest", "path", ""),
    Parameter("endpoint", "str", "survival"),
    Parameter("modelName", "str", "auto"),
    Parameter("outputDir", "path", ""),
    Parameter("cv", "int", 5),
    Parameter("seed", "int", 0),
    Parameter("maxEpochs", "int", 0, help="cap on training epochs of networks (0: the model's default)"),
    Parameter("modelParams", "str", "", help="hyper-parameters: KEY=VALUE, comma-separated"),
    Parameter("paramsFile", "path", "", help="JSON or YAML file of hyper-parameters"),
    # report
    Parameter("testManifest", "path", ""),
)

_WRAPPER = []


def parameterNodeClass():
    """The ``parameterNodeWrapper`` class (inside Slicer; None elsewhere), made once."""
    if not _WRAPPER:
        _WRAPPER.append(wrapper_class("CMRRiskPredictParameterNode", PARAMETERS))
    return _WRAPPER[0]


def parameters(scene, wrapped=False):
    """The module's parameters in ``scene`` (see CMRRiskSegmentLib.parameters.parameters)."""
    return open_parameters(scene, MODULE, PARAMETERS, parameterNodeClass() if wrapped else None)
