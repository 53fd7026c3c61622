"""Small synthetic DICOM series (written with pydicom) from the synthetic cohort's images, for
the DICOM SEG / SR / DICOMweb tests."""

from __future__ import annotations

import os

import numpy as np


def synthetic_subject(seed: int = 0, slices=slice(3, 7)):
    """ED / ES / LGE images and labels of one synthetic subject, a few slices only."""
    from cmrrisk import synthetic as S

    rng = np.random.default_rng(seed)
    p = S.draw_subject(rng)
    r = S.render_subject(p, rng)
    sp = float(-S._affine(p)[0, 0])
    return {"ed_img": r["ed_img"][slices], "es_img": r["es_img"][slices], "lge_img": r["lge_img"][slices],
            "ed": r["ed"][slices], "es": r["es"][slices], "lge": r["lge"][slices], "spacing": sp}


def write_series(folder, phases, spacing=1.6, thickness=10.0, kind="cine", messy=False, study_uid=None,
                 series_uid=None, trigger_jitter=0.0, description=None):
    """Write ``phases`` (list of (slice, row, column) arrays) as one MR series into ``folder``.
    ``messy``: Sunnybrook's faults: a FrameOfReferenceUID per image, dates 20120000 / 00000000,
    UID components with leading zeros; ``trigger_jitter``: ms added per slice to TriggerTime."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    os.makedirs(folder, exist_ok=True)
    study_uid = study_uid or (("1.2.826.0.1.3680043.8.498.0123." + str(abs(hash(str(folder))) % 10**8))
                              if messy else generate_uid())
    series_uid = series_uid or (study_uid + ".01" if messy else generate_uid())
    for_uid = generate_uid()
    n_slices = phases[0].shape[0]
    iop = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    n = 0
    for t, arr in enumerate(phases):
        for z in range(n_slices):
            n += 1
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            sop = f"{series_uid}.0{n}" if messy else generate_uid()
            meta.MediaStorageSOPInstanceUID = sop
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.FrameOfReferenceUID = generate_uid() if messy else for_uid
            ds.Modality, ds.Manufacturer = "MR", "CMRRisk synthetic"
            ds.PatientName, ds.PatientID = "Synthetic^Subject", "SYNTH001"
            ds.PatientBirthDate = "00000000" if messy else "19600101"
            ds.PatientSex = "O"
            ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20120000" if messy else "20200101"
            ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
            ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = "", "1", ""
            ds.SeriesNumber, ds.InstanceNumber = 5, n
            ds.SeriesDescription = description or ("cine SSFP SAX" if kind == "cine" else "LGE PSIR SAX")
            if kind == "lge":
                ds.InversionTime = 300
            ds.ImageType = ["ORIGINAL", "PRIMARY"]
            ds.ImageOrientationPatient = iop
            ds.ImagePositionPatient = [-100.0, -90.0, float(z * thickness)]
            ds.PixelSpacing = [spacing, spacing]
            ds.SliceThickness = thickness
            if len(phases) > 1:
                ds.TriggerTime = float(t * 40.0 + z * trigger_jitter)
            ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            img = np.clip(np.asarray(arr[z], float), 0, None)
            img = (img / max(float(np.asarray(phases).max()), 1e-6) * 4000).astype(np.uint16)
            ds.PixelData = img.tobytes()
            ds.save_as(os.path.join(folder, f"im{n:04d}.dcm"), enforce_file_format=True)
    return study_uid, series_uid
