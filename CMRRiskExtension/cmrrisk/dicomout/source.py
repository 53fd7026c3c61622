"""The source series of a segmentation, as [slice][phase] pydicom datasets in the order of
:func:`cmrrisk.dicom.read_dicom_folder`, and the safe repairs of messy headers.

Real series are messy (the public Sunnybrook data show all of these):

- every image carries its own FrameOfReferenceUID. When the geometry is consistent (one
  orientation, all images on one line along the slice normal, one pixel spacing and size) the
  first image's frame of reference is given to all of them in the copies that the SEG is built
  from; otherwise the series is refused, naming the file and attribute;
- dates such as ``00000000`` or ``20120000`` are not dates: blanked in those copies;
- UIDs with components that begin with a zero are not valid DICOM UIDs, but they are what the
  PACS holds, so they are kept verbatim (a changed UID would no longer point at the image) and
  reported; a UID that cannot be encoded at all (letters, over 64 characters, empty components)
  is refused;
- TriggerTime varies between slices of one phase: phases are grouped by their order at each
  slice position (as the reader does), and the spread is reported.

Every repair is described once in :attr:`Series.repairs`; nothing is written back to the source
files.
"""

from __future__ import annotations

import copy
import datetime
import os
import re
from collections import defaultdict

import numpy as np

from ..errors import CMRRiskError

#: date attributes checked (and blanked when invalid) in the copies
DATE_ATTRIBUTES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "PatientBirthDate",
                   "InstanceCreationDate")
#: UID attributes checked
UID_ATTRIBUTES = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
                  "SOPClassUID")
_UID_CHARS = re.compile(r"^[0-9]+(\.[0-9]+)*$")
#: largest distance (mm) of an image's position from the line through the first image along the
#: slice normal for the geometry to count as consistent
IN_PLANE_TOLERANCE_MM = 0.5


class Series:
    """One source series: ``grid[slice][phase]`` datasets (headers, repaired copies),
    ``paths[slice][phase]`` their files, and the list of repairs made."""

    def __init__(self, grid, paths, repairs):
        self.grid = grid
        self.paths = paths
        self.repairs = repairs

    @property
    def first(self):
        return self.grid[0][0]

    def frame(self, phase: int) -> list:
        """The datasets of one phase, one per slice, in slice order."""
        return [loc[phase] for loc in self.grid]

    @property
    def series_uid(self) -> str:
        return str(self.first.SeriesInstanceUID)


def _valid_date(v) -> bool:
    s = str(v or "").strip()
    if not s:
        return True
    if not re.fullmatch(r"\d{8}", s):
        return False
    try:
        datetime.date(int(s[:4]), int(s[4:6]), int(s[6:]))
    except ValueError:
        return False
    return True


def load_series(folder: str, shape=None) -> Series:
    """Read the headers of the single series in ``folder`` (as the image reader did), order them
    [slice][phase] and repair what is safe. ``shape``: the image's array shape, checked."""
    from ..dicom import POSITION_TOLERANCE_MM, quiet_pydicom, read_headers

    with quiet_pydicom():
        items = read_headers(folder)
    if not items:
        raise CMRRiskError(f"{folder}: no readable DICOM image files in this folder.")
    for path, ds in items:
        for tag in ("SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID", "SOPClassUID"):
            if not ds.get(tag):
                raise CMRRiskError(f"{path}: DICOM attribute {tag} is missing; a DICOM SEG must "
                                   "reference its source by these UIDs.")
    iop = np.asarray(items[0][1].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    normal /= np.linalg.norm(normal)
    proj = sorted(((float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)), p, ds)
                   for p, ds in items), key=lambda t: t[0])
    locations: list[list] = []
    for d, p, ds in proj:
        if locations and abs(d - locations[-1][0][0]) <= POSITION_TOLERANCE_MM:
            locations[-1].append((d, p, ds))
        else:
            locations.append([(d, p, ds)])
    if len(locations[0]) > 1:
        for loc in locations:
            loc.sort(key=lambda e: float(e[2].TriggerTime))
    grid = [[e[2] for e in loc] for loc in locations]
    paths = [[e[1] for e in loc] for loc in locations]
    if shape is not None:
        n_phase = len(grid[0]) if len(shape) == 4 else 1
        if (len(grid), n_phase) != ((shape[1], shape[0]) if len(shape) == 4 else (shape[0], 1)):
            raise CMRRiskError(f"{folder}: the DICOM files do not match the image read from them "
                               f"({len(grid)} slices x {len(grid[0])} phases for shape {list(shape)}).")
    repairs = _repair(grid, paths, normal)
    return Series(grid, paths, repairs)


def _repair(grid, paths, normal) -> list[str]:
    """Repair the datasets in place (they are copies read from disk); return what was done."""
    repairs = []
    flat = [(p, ds) for row_p, row in zip(paths, grid) for p, ds in zip(row_p, row)]

    # UIDs: refuse what cannot be encoded; keep leading zeros verbatim
    leading = set()
    for p, ds in flat:
        for a in UID_ATTRIBUTES:
            v = ds.get(a)
            if v is None:
                continue
            s = str(v)
            if len(s) > 64 or not _UID_CHARS.match(s):
                raise CMRRiskError(f"{p}: {a} {s!r} is not a DICOM UID (digits and dots, at most 64 "
                                   "characters); fix the file before storing results that reference it.")
            if any(len(c) > 1 and c.startswith("0") for c in s.split(".")):
                leading.add(a)
    if leading:
        repairs.append(f"kept verbatim: {', '.join(sorted(leading))} with components that begin with "
                       "0 (not valid DICOM UIDs, but they are what the archive holds)")

    # dates
    blanked = defaultdict(set)
    for _p, ds in flat:
        for a in DATE_ATTRIBUTES:
            v = ds.get(a)
            if v is not None and not _valid_date(v):
                blanked[a].add(str(v))
                setattr(ds, a, "")
    if blanked:
        repairs.append("blanked invalid dates: " + ", ".join(f"{a} {sorted(v)}" for a, v in blanked.items()))

    # frame of reference
    fors = {str(ds.get("FrameOfReferenceUID") or "") for _p, ds in flat}
    if len(fors) > 1 or "" in fors:
        p0, ds0 = flat[0]
        o0 = np.asarray(ds0.ImagePositionPatient, float)
        for p, ds in flat:
            off = np.asarray(ds.ImagePositionPatient, float) - o0
            in_plane = off - np.dot(off, normal) * normal
            if np.linalg.norm(in_plane) > IN_PLANE_TOLERANCE_MM:
                raise CMRRiskError(
                    f"{p}: FrameOfReferenceUID differs from {os.path.basename(p0)}'s and the image lies "
                    f"{np.linalg.norm(in_plane):.1f} mm off the stack's axis, so the images cannot be put "
                    "in one frame of reference; give a series whose images share one.")
        target = str(ds0.get("FrameOfReferenceUID") or "")
        if not target:
            from .uids import derived_uid

            target = derived_uid("frame of reference", str(ds0.SeriesInstanceUID))
        for _p, ds in flat:
            ds.FrameOfReferenceUID = target
        repairs.append(f"FrameOfReferenceUID: {len(fors - {''})} different values (and "
                       f"{'some' if '' in fors else 'none'} missing) in a geometrically consistent "
                       f"stack; {target} used for all")

    # trigger times within one phase
    n_phase = len(grid[0])
    if n_phase > 1:
        spread = max(float(np.ptp([float(loc[t].TriggerTime) for loc in grid])) for t in range(n_phase))
        if spread > 0.5:
            repairs.append(f"TriggerTime varies by up to {spread:.1f} ms between slices of one phase; "
                           "phases grouped by their order at each slice position")
    return repairs


def copy_frame(series: Series, phase: int) -> list:
    """Deep copies of one phase's datasets (highdicom may touch them)."""
    return [copy.deepcopy(ds) for ds in series.frame(phase)]
