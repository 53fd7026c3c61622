"""The image volume type and its geometry (no file reading here: see :mod:`cmrrisk.image` for
the readers and writers, :mod:`cmrrisk.dicom` for DICOM series).

Conventions (the only place where coordinate systems are converted):

* ``Volume.array`` is in numpy order ``(k, j, i)`` for 3D or ``(t, k, j, i)`` for a cine,
  i.e. (slice, row, column) - the same order as Slicer's ``arrayFromVolume``.
* ``Volume.ijk_to_ras`` is the 4x4 matrix from voxel index (i, j, k) to patient RAS millimetres,
  the convention of NIfTI (nibabel's affine) and of Slicer's ``vtkMRMLVolumeNode``.
  ITK / SimpleITK / DICOM use LPS: :func:`lps_to_ras` converts, nowhere else does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

NIFTI_EXT = (".nii", ".nii.gz")
ITK_EXT = (".nrrd", ".nhdr", ".mha", ".mhd")

#: flips the first two axes: LPS <-> RAS (its own inverse)
LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def lps_to_ras(matrix_lps: np.ndarray) -> np.ndarray:
    """Convert a 4x4 index-to-LPS matrix into index-to-RAS (and back: the flip is an involution)."""
    return LPS_RAS @ np.asarray(matrix_lps, dtype=float)


def geometry_matrix(spacing, origin, direction) -> np.ndarray:
    """4x4 index-to-world matrix from spacing (i, j, k), origin and 3x3 direction (columns = axes)."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) @ np.diag(np.asarray(spacing, float))
    m[:3, 3] = np.asarray(origin, dtype=float)
    return m



def size_text(shape) -> str:
    """An array shape (phases,) slices, rows, columns as a file states it: columns x rows x slices
    (x phases), the order of NIfTI / NRRD headers and of most viewers."""
    return " x ".join(str(int(n)) for n in reversed(tuple(shape)))

@dataclass
class Volume:
    """A 3D or 4D (cine) image and its geometry."""

    array: np.ndarray
    ijk_to_ras: np.ndarray
    source: str = ""
    #: seconds (or ms) between cine phases when known
    time_spacing: float | None = None
    #: free-form metadata (vendor, field strength, trigger times, ...)
    meta: dict = field(default_factory=dict)
    #: nibabel header of a NIfTI input, kept so that outputs copy it exactly
    nifti_header: object = None

    @property
    def is_cine(self) -> bool:
        return self.array.ndim == 4

    @property
    def spacing(self) -> tuple:
        """Voxel size (i, j, k) in mm."""
        return tuple(float(x) for x in np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0))

    @property
    def frame_shape(self) -> tuple:
        return tuple(self.array.shape[-3:])

    def frame(self, t: int) -> "Volume":
        """Phase ``t`` of a cine as a 3D volume with the same geometry."""
        if not self.is_cine:
            raise ValueError("frame() needs a 4D cine volume")
        return Volume(self.array[t], self.ijk_to_ras.copy(), f"{self.source}[phase {t}]",
                      meta=dict(self.meta))

    def with_array(self, array: np.ndarray) -> "Volume":
        """A volume with the same geometry (and NIfTI header) holding ``array``."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from the volume's {self.array.shape}")
        return Volume(array, self.ijk_to_ras.copy(), self.source, self.time_spacing,
                      dict(self.meta), self.nifti_header)


def stem(path: str) -> str:
    """File name without its image extension (``patient101_frame01.nii.gz`` -> ``patient101_frame01``);
    for a folder, the folder's name."""
    name = os.path.basename(os.path.normpath(path))
    if os.path.isdir(path):
        return name
    for ext in NIFTI_EXT + ITK_EXT + (".dcm",):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]
