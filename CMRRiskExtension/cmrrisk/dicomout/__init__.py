"""DICOM outputs a hospital can store: segmentations as DICOM SEG, measurements as a DICOM SR
(TID 1500 measurement report), and the DICOMweb client that fetches series from and sends results
to a PACS.

- :mod:`.source`: the source series as [slice][phase] datasets in the order of
  :func:`cmrrisk.dicom.read_dicom_folder`, with the safe repairs of messy headers;
- :mod:`.codes`: the coded concepts (SNOMED CT, LOINC, UCUM, the private 99CMRRISK scheme);
- :mod:`.seg`: label map <-> BINARY DICOM SEG;
- :mod:`.sr`: the measurement report;
- :mod:`.write`: everything written for one segmented DICOM input;
- :mod:`.web`: DICOMweb (QIDO-RS, WADO-RS, STOW-RS).

Nothing here imports Slicer; the scene side is :mod:`cmrrisk.mrml.dicomseg`.
"""
