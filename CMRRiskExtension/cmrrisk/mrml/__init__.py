"""The one bridge between the CMRRisk core and Slicer's MRML scene.

Imports Slicer's MRML classes, vtk and numpy only; every function takes the scene or nodes as
arguments. It uses only what works both inside the Slicer application and with the
``slicer-core`` package (real MRML scene without Qt), so it is tested headless.
"""

from .bridge import (  # noqa: F401
    add_table,
    labels_to_segmentation,
    place_in_study,
    segmentation_to_labels,
    study_from_nodes,
    sequence_volume_nodes,
    volume_from_node,
    volume_from_sequence,
    volume_to_node,
)
