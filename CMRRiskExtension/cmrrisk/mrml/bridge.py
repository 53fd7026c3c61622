"""Conversions between MRML nodes and :class:`cmrrisk.image.Volume` / label arrays."""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from .. import labels as L
from ..errors import CMRRiskError
from ..image import Volume


def _matrix_to_numpy(m: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def _numpy_to_matrix(a: np.ndarray) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(a[r, c]))
    return m


def _node_array(node) -> np.ndarray:
    img = node.GetImageData()
    if img is None or img.GetPointData() is None or img.GetPointData().GetScalars() is None:
        raise CMRRiskError(f"volume node '{node.GetName()}' has no image data.")
    dims = img.GetDimensions()
    scalars = img.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        raise CMRRiskError(f"volume node '{node.GetName()}' has {scalars.GetNumberOfComponents()} "
                           "components per voxel; a scalar volume is needed.")
    arr = numpy_support.vtk_to_numpy(scalars).reshape(dims[2], dims[1], dims[0])
    return np.array(arr)  # copy: the node keeps its own buffer


def _grid_shape(node) -> tuple:
    """(k, j, i) size of a volume node's voxel grid."""
    img = node.GetImageData()
    if img is None:
        raise CMRRiskError(f"volume node '{node.GetName()}' has no image data.")
    i, j, k = img.GetDimensions()
    return (k, j, i)


#: node attribute holding a :class:`Volume`'s series metadata (JSON), e.g. for --model auto
META_ATTRIBUTE = "CMRRisk.meta"
#: per-file lists left out of the stored metadata
_META_SKIP = ("instance_numbers", "trigger_times_ms")


def node_meta(node) -> dict:
    """The series metadata stored on a node by :func:`volume_to_node` ({} when none)."""
    import json

    text = node.GetAttribute(META_ATTRIBUTE)
    if not text:
        return {}
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise CMRRiskError(f"volume node '{node.GetName()}': attribute {META_ATTRIBUTE} is not "
                           f"valid JSON ({exc}); remove it.") from exc
    return meta if isinstance(meta, dict) else {}


def volume_from_node(node) -> Volume:
    """A scalar volume node as a :class:`Volume` (array (k, j, i), IJK-to-RAS geometry).

    Parent transforms are not applied: the geometry is the node's own IJK-to-RAS matrix.
    """
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return Volume(_node_array(node), _matrix_to_numpy(m), source=node.GetName(), meta=node_meta(node))


def volume_to_node(scene, vol: Volume, name: str, node=None, label: bool = False):
    """Add (or update) a scalar or labelmap volume node holding a 3D :class:`Volume`."""
    if vol.is_cine:
        raise CMRRiskError(f"{vol.source}: a 4D cine becomes a sequence, not one volume node.")
    if node is None:
        cls = "vtkMRMLLabelMapVolumeNode" if label else "vtkMRMLScalarVolumeNode"
        node = scene.AddNewNodeByClass(cls, name)
        node.CreateDefaultDisplayNodes()
    arr = np.ascontiguousarray(vol.array)
    img = vtk.vtkImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(arr.ravel(), deep=True))
    node.SetIJKToRASMatrix(_numpy_to_matrix(vol.ijk_to_ras))
    node.SetAndObserveImageData(img)
    if vol.meta:
        import json

        keep = {k: v for k, v in vol.meta.items() if k not in _META_SKIP}
        node.SetAttribute(META_ATTRIBUTE, json.dumps(keep, default=str))
    return node


def sequence_volume_nodes(sequence_node) -> list:
    n = sequence_node.GetNumberOfDataNodes()
    nodes = [sequence_node.GetNthDataNode(i) for i in range(n)]
    bad = [i for i, nd in enumerate(nodes) if nd is None or not nd.IsA("vtkMRMLScalarVolumeNode")]
    if not nodes or bad:
        raise CMRRiskError(f"sequence '{sequence_node.GetName()}' does not hold scalar volumes "
                           f"(items {bad or 'none'}); select a cine volume sequence.")
    return nodes


def volume_from_sequence(sequence_node, phases=None) -> Volume:
    """Phases of a volume sequence (all, or the given indices) as a 4D :class:`Volume`."""
    nodes = sequence_volume_nodes(sequence_node)
    idx = list(range(len(nodes))) if phases is None else [int(p) for p in phases]
    for p in idx:
        if not 0 <= p < len(nodes):
            raise CMRRiskError(f"phase {p} is outside sequence '{sequence_node.GetName()}' "
                               f"(0..{len(nodes) - 1}).")
    vols = [volume_from_node(nodes[p]) for p in idx]
    shape, geom = vols[0].array.shape, vols[0].ijk_to_ras
    for p, v in zip(idx, vols):
        if v.array.shape != shape or not np.allclose(v.ijk_to_ras, geom, atol=1e-4):
            raise CMRRiskError(f"sequence '{sequence_node.GetName()}': phase {p} differs in size or "
                               "geometry from the first; a cine needs identical frames.")
    return Volume(np.stack([v.array for v in vols]), geom.copy(), source=sequence_node.GetName())


def _style_segment(segment, label: int) -> None:
    name, color, _ = L.SEGMENTS[label]
    segment.SetName(name)
    segment.SetColor(*color)
    segment.SetLabelValue(label)
    segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), L.terminology_string(label))


def labels_to_segmentation(scene, labels: np.ndarray, reference_node, name: str,
                           structures=L.CINE_LABELS, segmentation_node=None, study_node=None):
    """Create (or fill) a ``vtkMRMLSegmentationNode`` from a (k, j, i) label array on the grid of
    ``reference_node``: one named, coloured segment with terminology per structure (present
    or not), in the subject-hierarchy folder or study of ``study_node`` (default: the reference;
    pass the sequence node when the reference is a frame of a sequence)."""
    ref_arr_shape = _grid_shape(reference_node)
    if tuple(labels.shape) != tuple(ref_arr_shape):
        raise CMRRiskError(f"label array {labels.shape} does not match volume "
                           f"'{reference_node.GetName()}' {ref_arr_shape}.")
    m = vtk.vtkMatrix4x4()
    reference_node.GetIJKToRASMatrix(m)
    lm = slicer.vtkMRMLLabelMapVolumeNode()
    lm.SetIJKToRASMatrix(m)
    img = vtk.vtkImageData()
    img.SetDimensions(labels.shape[2], labels.shape[1], labels.shape[0])
    arr = np.ascontiguousarray(labels.astype(np.uint8))
    vtk_arr = numpy_support.numpy_to_vtk(arr.ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
    img.GetPointData().SetScalars(vtk_arr)
    lm.SetAndObserveImageData(img)
    scene.AddNode(lm)
    seg_node = segmentation_node
    if seg_node is None:
        seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        seg_node.CreateDefaultDisplayNodes()
    else:
        seg_node.GetSegmentation().RemoveAllSegments()
    seg_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(lm, seg_node, "")
        if not ok:
            raise CMRRiskError(f"could not import the labels of '{name}' into a segmentation.")
    finally:
        scene.RemoveNode(lm)
    seg = seg_node.GetSegmentation()
    present = {}
    for i in range(seg.GetNumberOfSegments()):
        sid = seg.GetNthSegmentID(i)
        present[int(seg.GetSegment(sid).GetLabelValue())] = sid
    for value, sid in present.items():
        if value not in structures:
            seg.RemoveSegment(sid)
    for label in structures:
        if label in present:
            segment = seg.GetSegment(present[label])
        else:
            sid = seg.AddEmptySegment(L.SEGMENTS[label][0].replace(" ", "_"))
            segment = seg.GetSegment(sid)
        _style_segment(segment, label)
    place_in_study(scene, seg_node, study_node or reference_node)
    follow_transform(seg_node, reference_node)
    return seg_node


def follow_transform(node, reference_node) -> None:
    """Put ``node`` under the parent transform of ``reference_node`` (if any), so that an output
    made on the reference's voxel grid is shown where the reference is."""
    tid = reference_node.GetTransformNodeID() if reference_node is not None else None
    if tid and node.GetTransformNodeID() != tid:
        node.SetAndObserveTransformNodeID(tid)


def segmentation_to_labels(segmentation_node, reference_node) -> np.ndarray:
    """The segmentation as a (k, j, i) project-label array on the grid of ``reference_node``.

    Segments are recognised by name (see :data:`cmrrisk.labels.SEGMENTS`); others are ignored.
    """
    by_name = {v[0]: k for k, v in L.SEGMENTS.items()}
    seg = segmentation_node.GetSegmentation()
    shape = _grid_shape(reference_node)
    out = np.zeros(shape, dtype=np.uint8)
    scene = segmentation_node.GetScene()
    for i in range(seg.GetNumberOfSegments()):
        sid = seg.GetNthSegmentID(i)
        label = by_name.get(seg.GetSegment(sid).GetName())
        if label is None:
            continue
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(sid)
        lm = slicer.vtkMRMLLabelMapVolumeNode()
        scene.AddNode(lm)
        try:
            slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, ids, lm, reference_node)
            if lm.GetImageData() is None:
                continue
            mask = _node_array(lm)
            if mask.shape != shape:
                raise CMRRiskError(f"segment '{seg.GetSegment(sid).GetName()}' exported with shape "
                                   f"{mask.shape}, expected {shape}.")
            out[mask > 0] = label
        finally:
            _remove_with_display(scene, lm)
    return out


def _remove_with_display(scene, node) -> None:
    """Remove a temporary volume node and the display and colour nodes made for it (exporting
    segments to a label map adds both; removing the volume alone leaves them in the scene)."""
    disp = node.GetDisplayNode()
    color = disp.GetColorNode() if disp is not None else None
    scene.RemoveNode(node)
    if disp is not None and disp.GetScene() is not None:
        scene.RemoveNode(disp)
    if color is not None and color.GetScene() is not None and not color.GetSingletonTag():
        scene.RemoveNode(color)


def place_in_study(scene, node, reference_node) -> None:
    """Put ``node`` in the subject-hierarchy parent (study or folder) of ``reference_node``."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if sh is None:
        return
    ref_item = sh.GetItemByDataNode(reference_node)
    if not ref_item:
        return
    parent = sh.GetItemParent(ref_item)
    if not parent:
        return
    item = sh.GetItemByDataNode(node)
    if item:
        sh.SetItemParent(item, parent)
    else:  # outside the Slicer application no plugin creates items for new nodes
        sh.CreateItem(parent, node)


def add_table(scene, name: str, columns: dict, reference_node=None):
    """A ``vtkMRMLTableNode`` with the given columns (name -> list of str or numbers)."""
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = table_node.GetTable()
    n = None
    for col_name, values in columns.items():
        values = list(values)
        if n is None:
            n = len(values)
        elif len(values) != n:
            raise ValueError(f"column {col_name!r} has {len(values)} rows, expected {n}")
        if all(isinstance(v, (int, float, np.floating, np.integer)) for v in values):
            arr = vtk.vtkDoubleArray()
            for v in values:
                arr.InsertNextValue(float(v))
        else:
            arr = vtk.vtkStringArray()
            for v in values:
                arr.InsertNextValue(str(v))
        arr.SetName(col_name)
        table.AddColumn(arr)
    table_node.Modified()
    if reference_node is not None:
        place_in_study(scene, table_node, reference_node)
    return table_node


def study_from_nodes(edVolumeNode=None, esVolumeNode=None, lgeVolumeNode=None, edSegmentationNode=None,
                     esSegmentationNode=None, lgeSegmentationNode=None, covariates=None, bsa=None,
                     subject=None):
    """The :class:`cmrrisk.study.Study` of volume nodes (each optional), their segmentation nodes
    (optional: a missing one is segmented by the core) as label arrays on their volume's grid,
    the covariates ({column: value}) and the body surface area (m2). ``subject``: default the
    name of the ED (else LGE) volume node, else "study"."""
    from ..study import Study

    def vol(node):
        return volume_from_node(node) if node is not None else None

    def labels(seg_node, vol_node):
        return segmentation_to_labels(seg_node, vol_node) if seg_node is not None else None

    reference = edVolumeNode or lgeVolumeNode
    return Study(subject=subject or (reference.GetName() if reference is not None else "study"),
                 ed=vol(edVolumeNode), es=vol(esVolumeNode), lge=vol(lgeVolumeNode),
                 ed_seg=labels(edSegmentationNode, edVolumeNode), es_seg=labels(esSegmentationNode, esVolumeNode),
                 lge_seg=labels(lgeSegmentationNode, lgeVolumeNode), covariates=dict(covariates or {}),
                 bsa_m2=bsa)
