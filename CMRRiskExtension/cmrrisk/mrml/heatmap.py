"""Saliency heatmaps in a Slicer scene: a scalar volume node with the reference image's
geometry, a procedural "heat" colour map (no colour files ship with slicer-core, so it is built
here), a window covering the positive attributions, values below a small threshold transparent,
and the heatmap set as the foreground of every slice view (when the scene has slice views)."""

from __future__ import annotations

import numpy as np

from ..errors import CMRRiskError
from ..image import Volume
from .bridge import follow_transform, place_in_study, volume_to_node

COLOR_NODE_NAME = "CMRRisk heat"
#: (position in [0, 1], r, g, b): black - dark red - red - orange - yellow - white
HEAT_POINTS = ((0.0, 0.0, 0.0, 0.0), (0.25, 0.5, 0.0, 0.0), (0.5, 0.9, 0.1, 0.0),
               (0.75, 1.0, 0.6, 0.0), (0.9, 1.0, 0.95, 0.2), (1.0, 1.0, 1.0, 1.0))


def heat_color_node(scene, vmax: float = 1.0, name: str = COLOR_NODE_NAME):
    """A ``vtkMRMLProceduralColorNode`` with a heat colour map over [0, vmax] (reused when a
    node of that name exists; its points are rescaled to ``vmax``)."""
    if not vmax > 0:
        vmax = 1.0
    node = None
    nodes = scene.GetNodesByClassByName("vtkMRMLProceduralColorNode", name)
    nodes.UnRegister(None)  # a new collection is returned (Slicer's idiom: release it)
    if nodes.GetNumberOfItems():
        node = nodes.GetItemAsObject(0)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLProceduralColorNode", name)
        node.SetAttribute("Category", "CMRRisk")
    ctf = node.GetColorTransferFunction()
    ctf.RemoveAllPoints()
    for pos, r, g, b in HEAT_POINTS:
        ctf.AddRGBPoint(pos * vmax, r, g, b)
    ctf.SetColorSpaceToRGB()
    node.Modified()
    return node


def heatmap_to_node(scene, heat: Volume, name: str, reference_node=None, node=None,
                    threshold_fraction: float = 0.05):
    """Add (or update) a heatmap volume node. ``reference_node``: the explained image; the heatmap
    must have its exact shape and geometry (checked) and is placed in the same study."""
    arr = np.asarray(heat.array, np.float32)
    if arr.ndim != 3:
        raise CMRRiskError(f"heatmap {name!r}: expected a 3D volume, got shape {arr.shape}.")
    if reference_node is not None:
        from .bridge import volume_from_node

        ref = volume_from_node(reference_node)
        if ref.array.shape != arr.shape or not np.allclose(ref.ijk_to_ras, heat.ijk_to_ras, atol=1e-4):
            raise CMRRiskError(f"heatmap {name!r}: shape {arr.shape} / geometry differ from the reference "
                               f"volume '{reference_node.GetName()}' {ref.array.shape}; explain that volume.")
    node = volume_to_node(scene, Volume(arr, heat.ijk_to_ras, heat.source), name, node=node)
    vmax = float(arr.max()) if arr.size and arr.max() > 0 else 1.0
    color = heat_color_node(scene, vmax)
    disp = node.GetDisplayNode()
    if disp is None:
        node.CreateDefaultDisplayNodes()
        disp = node.GetDisplayNode()
    disp.SetAndObserveColorNodeID(color.GetID())
    disp.AutoWindowLevelOff()
    disp.SetWindowLevelMinMax(0.0, vmax)
    disp.SetLowerThreshold(threshold_fraction * vmax)
    disp.SetUpperThreshold(max(vmax, float(arr.max())) + 1.0)
    disp.ApplyThresholdOn()
    node.SetAttribute("CMRRisk.heatmap", "1")
    if reference_node is not None:
        place_in_study(scene, node, reference_node)
        follow_transform(node, reference_node)
    return node


def show_overlay(scene, heat_node, background_node=None, opacity: float = 0.5) -> int:
    """Show ``heat_node`` as the foreground (and ``background_node`` as the background) of every
    slice view; returns the number of slice composite nodes changed (0 outside the application
    when the scene has no views)."""
    n = 0
    nodes = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    nodes.UnRegister(None)
    for i in range(nodes.GetNumberOfItems()):
        comp = nodes.GetItemAsObject(i)
        if background_node is not None:
            comp.SetBackgroundVolumeID(background_node.GetID())
        comp.SetForegroundVolumeID(heat_node.GetID())
        comp.SetForegroundOpacity(float(opacity))
        n += 1
    return n

