"""A stand-alone MRML scene (outside the Slicer application) and saving a scene as ``.mrb``.

Inside Slicer use ``slicer.mrmlScene`` and the application's save dialog; these helpers are for
scripts that build a Slicer study without the application (``cmrrisk demo`` writes one ``.mrb``
per explained subject), with the ``slicer-core`` package or inside Slicer's Python alike.
"""

from __future__ import annotations

import os
import tempfile

_FACTORY_READY = False


def new_scene():
    """A ``vtkMRMLScene`` that can read and write MRB files and hold segmentations: cache and
    data-IO managers, application logic with the default colour nodes, sequence browser nodes,
    segmentation converter rules (registered once per process)."""
    global _FACTORY_READY
    import slicer

    scene = slicer.vtkMRMLScene()
    cache = slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(tempfile.mkdtemp(prefix="cmrrisk-mrml-"))
    io = slicer.vtkDataIOManager()
    io.SetCacheManager(cache)
    scene.SetCacheManager(cache)
    scene.SetDataIOManager(io)
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    app.GetColorLogic().SetMRMLScene(scene)
    app.GetColorLogic().AddDefaultColorNodes()
    # sequence browsers (registered by the Sequences module inside Slicer): play a cine and the
    # segmentation sequence made from it together
    if not scene.IsNodeClassRegistered("vtkMRMLSequenceBrowserNode"):
        scene.RegisterNodeClass(slicer.vtkMRMLSequenceBrowserNode())
    if not _FACTORY_READY:
        f = slicer.vtkSegmentationConverterFactory.GetInstance()
        f.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
        f.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())
        _FACTORY_READY = True
    scene._cmrrisk_app_logic = app  # the logic must live as long as the scene
    return scene


def save_mrb(scene, path: str) -> str:
    """Write ``scene`` as a Slicer bundle (``.mrb``) atomically: every storable node without a
    storage node gets its default one (volumes NRRD, segmentations .seg.nrrd, tables TSV)."""
    import shutil

    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLStorableNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLStorableNode")
        if node.GetStorageNode() is None and not node.GetHideFromEditors():
            node.AddDefaultStorageNode()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".mrb-", dir=folder)  # same file system: the rename is atomic
    try:
        tmp = os.path.join(work, os.path.basename(path))
        if not scene.WriteToMRB(tmp) or not os.path.isfile(tmp):
            raise OSError(f"{path}: Slicer could not write the scene bundle.")
        os.replace(tmp, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def write_study_mrb(path: str, subject: str, images: dict, segmentations: dict, heatmaps: dict,
                    tables: dict, method: str = "ig", attributes: dict | None = None) -> str:
    """Write one subject's study as an ``.mrb``: ``images`` {role: Volume} as volume nodes,
    ``segmentations`` {role: label array on that image's grid} as segmentation nodes (LGE labels
    for role ``lge``, cine labels otherwise), ``heatmaps`` {role: Volume} as heat-coloured volumes
    shown over their image, ``tables`` {name: {column: values}} as table nodes (``attributes``
    {table name: {key: value}} set on them)."""
    import numpy as np

    from .. import labels as L
    from .bridge import add_table, labels_to_segmentation, volume_to_node
    from .heatmap import heatmap_to_node, show_overlay

    scene = new_scene()
    try:
        nodes = {role: volume_to_node(scene, vol, f"{subject} {role}") for role, vol in images.items()}
        if not nodes:
            raise ValueError(f"{subject}: no image to place the study on.")
        for role, lab in segmentations.items():
            if role in nodes:
                labels_to_segmentation(scene, np.asarray(lab).astype(np.uint8), nodes[role],
                                       f"{subject} {role} segmentation",
                                       structures=L.LGE_LABELS if role == "lge" else L.CINE_LABELS)
        first = nodes.get("cine_ed") or next(iter(nodes.values()))
        heat = {role: heatmap_to_node(scene, vol, f"{subject} {role} {method} heatmap", nodes.get(role))
                for role, vol in heatmaps.items()}
        if heat:
            role = "cine_ed" if "cine_ed" in heat else next(iter(heat))
            show_overlay(scene, heat[role], nodes.get(role))
        for name, columns in tables.items():
            t = add_table(scene, f"{subject} {name}", columns, first)
            for k, v in (attributes or {}).get(name, {}).items():
                t.SetAttribute(k, str(v))
        return save_mrb(scene, path)
    finally:
        scene.Clear(1)
