"""User-facing errors."""

from __future__ import annotations


class CMRRiskError(Exception):
    """An error caused by the user's input (file, row, field): the message says what and what to do.

    The command line prints the message without a traceback and exits with status 2.

    ``code``: what kind of problem it is, for programs that react to it (quality control files a
    finding under it); one of :data:`CODES`, ``"error"`` when none is given. Programs tell errors
    apart by their code, never by the words of their message.
    """

    code = "error"

    def __init__(self, message: str = "", code: str | None = None):
        super().__init__(message)
        if code is not None:
            if code not in CODES:
                raise ValueError(f"unknown error code {code!r}")
            self.code = code

    def __reduce__(self):  # keeps the code when the error crosses a process boundary (Dask)
        return (type(self), self.args, self.__dict__)


#: error codes and what they mean
CODES = {
    "error": "any other problem with the input",
    "missing_file": "a file or folder named in the input does not exist",
    "unreadable": "a file exists but cannot be read as an image",
    "image_not_3d": "an image is not a 3D stack (or 4D cine)",
    "matrix_too_small": "an image's in-plane matrix is too small for a short-axis image",
    "nan_voxels": "an image holds NaN or infinite voxels",
    "degenerate_geometry": "an image's spacing or direction is degenerate",
    "mixed_series": "a DICOM folder holds several series",
    "inconsistent_matrix": "DICOM images of one series have different sizes",
    "inconsistent_orientation": "DICOM images of one series have different orientations",
    "inconsistent_spacing": "DICOM images of one series have different pixel spacings",
    "cine_phases": "cine phases are missing, duplicated or cannot be ordered",
    "slice_gap": "slice positions are not evenly spaced",
    "seg_shape_mismatch": "a segmentation's size differs from its image's",
}


class Cancelled(Exception):
    """Raised when the caller's ``cancel()`` returned True (see :class:`cmrrisk.progress.Progress`,
    the one progress-and-cancel contract of long steps); nothing was written.

    (Not a :class:`CMRRiskError`: a cancellation is not a failure of one subject's input.)
    ``cmrrisk.predict.study.Cancelled`` and ``cmrrisk.segmentation.infer.Cancelled`` are this class."""

