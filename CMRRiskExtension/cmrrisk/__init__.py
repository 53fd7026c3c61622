"""CMRRisk core library: cardiac MRI input, segmentation, features, prediction, explanation.

Pure Python (numpy, torch, monai, pydicom, SimpleITK, nibabel). Nothing in this package imports
Slicer, Qt or CTK, except :mod:`cmrrisk.mrml`, the single bridge to Slicer's MRML scene.
"""

__version__ = "0.1.0"

from .errors import CMRRiskError  # noqa: F401
