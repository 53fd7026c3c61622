"""DICOM SEG <-> ``vtkMRMLSegmentationNode``: the scene side of :mod:`cmrrisk.dicomout`.

- :func:`import_seg`: any DICOM SEG (CMRRisk's or another tool's) into a segmentation node with
  the SEG's segment names, recommended colours, terminology and geometry;
- :func:`export_seg`: segmentation nodes (ED and ES of a cine, or one LGE stack) on the grid of
  a volume loaded from a DICOM series -> SEG(s) and SR through the same core code as
  ``cmrrisk segment --dicom``;
- :func:`send`: store an export on a DICOMweb server (credentials from the environment).

The DICOM feature needs :data:`REQUIRED_PACKAGES`; a module asks for them on first use
(``cmrrisk.mrml.dependencies.ensure(REQUIRED_PACKAGES, also=())``).
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from .. import labels as L
from ..errors import CMRRiskError
from ..image import LPS_RAS
from .bridge import place_in_study, segmentation_to_labels

#: import name -> pip requirement of the DICOM SEG / SR / DICOMweb feature
REQUIRED_PACKAGES = {"highdicom": "highdicom==0.28.2", "dicomweb_client": "dicomweb-client==0.61.2",
                     "requests": "requests"}


def seg_ijk_to_ras(affine_lps) -> np.ndarray:
    """highdicom's volume affine ((slice, row, column) -> LPS) as Slicer's IJK-to-RAS ((column,
    row, slice) -> RAS)."""
    a = np.asarray(affine_lps, float)
    return LPS_RAS @ a[:, [2, 1, 0, 3]]


def _code_string(code) -> str:
    value, scheme, meaning = code
    return f"{scheme}^{value}^{meaning}"


def _terminology(seg: dict) -> str:
    if seg["label"] in L.SEGMENTS:
        return L.terminology_string(seg["label"])
    return ("Segmentation category and type - DICOM master list"
            f"~{_code_string(seg['category'])}~{_code_string(seg['type'])}~^^~Anatomic codes - DICOM master list~^^~^^")


def import_seg(scene, path_or_dataset, name: str | None = None, reference_node=None):
    """A new segmentation node from a DICOM SEG: one segment per SEG segment (present or
    empty), named and coloured as the SEG says, with its codes as terminology; geometry from the
    SEG's own plane positions. ``reference_node``: a volume to place the node with (subject
    hierarchy) and use as the reference geometry."""
    from ..dicomout.seg import read_seg

    r = read_seg(path_or_dataset)
    ds = r["dataset"]
    arr = np.ascontiguousarray(r["array"].astype(np.uint16))
    lm = slicer.vtkMRMLLabelMapVolumeNode()
    m = vtk.vtkMatrix4x4()
    g = seg_ijk_to_ras(r["affine_lps"])
    for i in range(4):
        for j in range(4):
            m.SetElement(i, j, float(g[i, j]))
    lm.SetIJKToRASMatrix(m)
    img = vtk.vtkImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(arr.ravel(), deep=True,
                                                             array_type=vtk.VTK_UNSIGNED_SHORT))
    lm.SetAndObserveImageData(img)
    scene.AddNode(lm)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                   name or str(ds.get("SeriesDescription") or "DICOM SEG"))
    node.CreateDefaultDisplayNodes()
    if reference_node is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    try:
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(lm, node, ""):
            raise CMRRiskError(f"{name or 'DICOM SEG'}: could not import its segments.")
    finally:
        scene.RemoveNode(lm)
    seg = node.GetSegmentation()
    by_value = {}
    for i in range(seg.GetNumberOfSegments()):
        sid = seg.GetNthSegmentID(i)
        by_value[int(seg.GetSegment(sid).GetLabelValue())] = sid
    for s in r["segments"]:
        sid = by_value.get(s["number"])
        if sid is None:
            sid = seg.AddEmptySegment(f"segment_{s['number']}")
        segment = seg.GetSegment(sid)
        segment.SetName(s["name"])
        if s["rgb"] is not None:
            segment.SetColor(*s["rgb"])
        # the label value stays the SEG's segment number: it is the voxel value in the shared
        # label map layer; segments are told apart by name (cmrrisk.mrml.bridge) and terminology
        segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), _terminology(s))
    if reference_node is not None:
        place_in_study(scene, node, reference_node)
    return node


def export_seg(source_folder: str, out_folder: str, reference_node, model: str = "cine", *,
               ed=None, es=None, stack=None, algorithm: dict | None = None) -> dict:
    """DICOM SEG(s) and SR of segmentation nodes made on ``reference_node`` (a volume loaded from
    the DICOM series in ``source_folder``; for a cine, any one of its phases).

    Cine: ``ed=(phase, segmentation_node)``, ``es=(phase, segmentation_node)``; LGE or a single
    frame: ``stack=segmentation_node``. ``model``: the model that made them (bundled name or
    folder), or ``algorithm={"name", "weights_sha256"}``. Returns
    :func:`cmrrisk.dicomout.write.export_frames`'s dict."""
    from ..dicomout.write import algorithm_info, export_frames

    m = vtk.vtkMatrix4x4()
    reference_node.GetIJKToRASMatrix(m)
    geometry = np.array([[m.GetElement(i, j) for j in range(4)] for i in range(4)])
    if stack is not None:
        frames = {"stack": segmentation_to_labels(stack, reference_node)}
    elif ed is not None and es is not None:
        frames = {k: (int(p), segmentation_to_labels(n, reference_node)) for k, (p, n) in (("ed", ed), ("es", es))}
    else:
        raise CMRRiskError("export: give ed and es (phase, segmentation node) of a cine, or stack.")
    return export_frames(source_folder, frames, algorithm or algorithm_info(model), out_folder,
                         source_geometry=geometry)


def send(url: str, files) -> list[str]:
    """Store exported files on a DICOMweb server in one STOW-RS request (all or nothing)."""
    from ..dicomout.web import stow_files

    return stow_files(url, files)
