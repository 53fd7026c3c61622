"""Image volumes with full geometry: reading NIfTI / NRRD / MHA / DICOM folders and writing results
(the :class:`~cmrrisk.volume.Volume` type itself lives in :mod:`cmrrisk.volume`).

Conventions (the only place where coordinate systems are converted):

* ``Volume.array`` is in numpy order ``(k, j, i)`` for 3D or ``(t, k, j, i)`` for a cine,
  i.e. (slice, row, column) - the same order as Slicer's ``arrayFromVolume``.
* ``Volume.ijk_to_ras`` is the 4x4 matrix from voxel index (i, j, k) to patient RAS millimetres,
  the convention of NIfTI (nibabel's affine) and of Slicer's ``vtkMRMLVolumeNode``.
  ITK / SimpleITK / DICOM use LPS: :func:`lps_to_ras` converts, nowhere else does.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from .errors import CMRRiskError
from .volume import (ITK_EXT, LPS_RAS, NIFTI_EXT, Volume, geometry_matrix, lps_to_ras,  # noqa: F401
                     size_text, stem)


def _is_ext(path: str, exts) -> bool:
    low = path.lower()
    return any(low.endswith(e) for e in exts)


def read_image(path: str, allow_4d: bool = True) -> Volume:
    """Read a NIfTI, NRRD or MHA file, or a DICOM folder (see :mod:`cmrrisk.dicom`).

    Raises :class:`CMRRiskError` naming the file when it is missing, unreadable, not 3D/4D,
    or holds NaN / infinite values.
    """
    if not os.path.exists(path):
        raise CMRRiskError(f"{path}: no such file or folder; check the path.", code="missing_file")
    if os.path.isdir(path):
        from .dicom import read_dicom_folder

        vol = read_dicom_folder(path)
    elif _is_ext(path, NIFTI_EXT):
        vol = _read_nifti(path)
    elif _is_ext(path, ITK_EXT):
        vol = _read_itk(path)
    else:
        raise CMRRiskError(
            f"{path}: unsupported file type; give a NIfTI (.nii, .nii.gz), NRRD (.nrrd), "
            "MetaImage (.mha, .mhd) file or a folder of DICOM files.", code="unreadable")
    _validate(vol, path, allow_4d)
    return vol


def _validate(vol: Volume, path: str, allow_4d: bool) -> None:
    a = vol.array
    if a.ndim < 3 or (a.ndim == 3 and min(a.shape) < 1):
        raise CMRRiskError(f"{path}: image has shape {a.shape}; a 3D short-axis stack "
                           "(slices x rows x columns) or a 4D cine is needed.", code="image_not_3d")
    if a.ndim > 4 or (a.ndim == 4 and not allow_4d):
        raise CMRRiskError(f"{path}: image has {a.ndim} dimensions {a.shape}; expected 3D"
                           + (" or 4D" if allow_4d else "") + ".", code="image_not_3d")
    if a.shape[-1] < 16 or a.shape[-2] < 16:
        raise CMRRiskError(f"{path}: in-plane size {a.shape[-2]}x{a.shape[-1]} is too small for "
                           "a short-axis image (at least 16x16 pixels needed).", code="matrix_too_small")
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
        n = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise CMRRiskError(f"{path}: image contains {n} NaN or infinite voxels; "
                           "fix or mask them before segmentation.", code="nan_voxels")
    if not np.all(np.isfinite(vol.ijk_to_ras)) or abs(np.linalg.det(vol.ijk_to_ras[:3, :3])) < 1e-12:
        raise CMRRiskError(f"{path}: image geometry is degenerate (zero spacing or invalid "
                           "direction); fix the header.", code="degenerate_geometry")


def _read_nifti(path: str) -> Volume:
    import nibabel as nib

    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise CMRRiskError(f"{path}: cannot read as NIfTI ({exc}).", code="unreadable") from exc
    if data.ndim == 2:
        raise CMRRiskError(f"{path}: image is 2D {data.shape}; a 3D short-axis stack "
                           "(or a 4D cine) is needed.", code="image_not_3d")
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0]
    if data.ndim > 4:
        raise CMRRiskError(f"{path}: image has {data.ndim} dimensions {data.shape}; expected 3D or 4D.", code="image_not_3d")
    # nibabel order is (i, j, k[, t]); ours is ([t,] k, j, i)
    arr = np.ascontiguousarray(data.transpose(tuple(range(data.ndim))[::-1]))
    hdr = img.header
    tsp = None
    if arr.ndim == 4:
        zooms = hdr.get_zooms()
        tsp = float(zooms[3]) if len(zooms) > 3 else None
    return Volume(arr, _nifti_affine(img), path, tsp, {}, hdr.copy())


def _nifti_affine(img) -> np.ndarray:
    """The header's sform, unless its scales contradict the voxel sizes (pixdim); then the qform
    (or, with qform_code 0, the pixdim-based matrix), as ITK - and so Slicer - does. Some public
    datasets (ACDC) have such inconsistent sforms."""
    hdr = img.header
    affine = np.asarray(img.affine, dtype=float)
    zooms = np.asarray(hdr.get_zooms()[:3], dtype=float)
    scales = np.linalg.norm(affine[:3, :3], axis=0)
    if not np.allclose(scales, zooms, rtol=1e-3, atol=1e-4):
        return np.asarray(hdr.get_qform(), dtype=float)
    return affine


def _read_itk(path: str) -> Volume:
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    try:
        img = sitk.ReadImage(path)
    except Exception as exc:
        raise CMRRiskError(f"{path}: cannot read image ({str(exc).strip().splitlines()[-1]}).", code="unreadable") from exc
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise CMRRiskError(f"{path}: image has {img.GetNumberOfComponentsPerPixel()} components per "
                           "voxel; a scalar (grey-level) image is needed.", code="unreadable")
    dim = img.GetDimension()
    if dim == 2:
        raise CMRRiskError(f"{path}: image is 2D {img.GetSize()}; a 3D short-axis stack "
                           "(or a 4D cine) is needed.", code="image_not_3d")
    arr = sitk.GetArrayFromImage(img)  # (k, j, i) or (t, k, j, i)
    sp = img.GetSpacing()[:3]
    org = img.GetOrigin()[:3]
    d = np.asarray(img.GetDirection(), float).reshape(dim, dim)[:3, :3]
    m = lps_to_ras(geometry_matrix(sp, org, d))
    tsp = float(img.GetSpacing()[3]) if dim == 4 else None
    return Volume(arr, m, path, tsp)


def write_image(vol: Volume, path: str) -> None:
    """Write ``vol`` atomically (temporary name, then rename) as NIfTI / NRRD / MHA.

    A volume read from NIfTI keeps that file's header (qform/sform codes), so the output's
    affine is exactly the input's.
    """
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    base = os.path.basename(path)
    ext = next((e for e in (".nii.gz",) + NIFTI_EXT + ITK_EXT if base.lower().endswith(e)), None)
    if ext is None:
        raise CMRRiskError(f"{path}: unsupported output type; use .nii.gz, .nii, .nrrd or .mha.")
    fd, tmp = tempfile.mkstemp(prefix="." + base[: -len(ext)] + ".", suffix=ext, dir=d)
    os.close(fd)
    try:
        if ext in NIFTI_EXT:
            _write_nifti(vol, tmp)
        else:
            _write_itk(vol, tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_nifti(vol: Volume, path: str) -> None:
    import nibabel as nib

    a = vol.array
    data = a.transpose(3, 2, 1, 0) if a.ndim == 4 else a.transpose(2, 1, 0)
    if vol.nifti_header is not None:
        hdr = vol.nifti_header.copy()
        hdr.set_data_dtype(a.dtype)
        img = nib.Nifti1Image(data, None, header=hdr)
        img.header.set_slope_inter(1.0, 0.0)
    else:
        img = nib.Nifti1Image(data, vol.ijk_to_ras)
        img.header.set_qform(vol.ijk_to_ras, code=1)
        img.header.set_sform(vol.ijk_to_ras, code=1)
        if a.ndim == 4:
            zooms = list(img.header.get_zooms()[:3]) + [vol.time_spacing or 1.0]
            img.header.set_zooms(zooms)
    nib.save(img, path)


def to_sitk(array: np.ndarray, ijk_to_ras: np.ndarray):
    """A 3D SimpleITK image (LPS geometry) of a (k, j, i) array with an index-to-RAS matrix."""
    import SimpleITK as sitk

    lps = lps_to_ras(ijk_to_ras)
    sp = np.linalg.norm(lps[:3, :3], axis=0)
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(tuple(float(x) for x in sp))
    img.SetOrigin(tuple(float(x) for x in lps[:3, 3]))
    img.SetDirection(tuple(float(x) for x in (lps[:3, :3] / sp).ravel()))
    return img


def _write_itk(vol: Volume, path: str) -> None:
    import SimpleITK as sitk

    lps = lps_to_ras(vol.ijk_to_ras)
    sp = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / sp
    img = sitk.GetImageFromArray(vol.array)
    if vol.array.ndim == 4:
        d4 = np.eye(4)
        d4[:3, :3] = direction
        img.SetSpacing(tuple(sp) + (vol.time_spacing or 1.0,))
        img.SetOrigin(tuple(lps[:3, 3]) + (0.0,))
        img.SetDirection(tuple(d4.ravel()))
    else:
        img.SetSpacing(tuple(sp))
        img.SetOrigin(tuple(lps[:3, 3]))
        img.SetDirection(tuple(direction.ravel()))
    sitk.WriteImage(img, path, useCompression=True)
