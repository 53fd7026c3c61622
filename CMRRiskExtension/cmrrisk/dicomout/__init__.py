"""DICOM outputs a hospital can store: segmentations as DICOM SEG, measurements as a DICOM SR
(TID 1500 measurement report), and the DICOMweb client that fetches series from and sends results
to a PACS.

- :mod:`.source`: the source series as [slice][phase] datasets in the order of
  :func:`cmrrisk.dicom.read_dicom_folder`, with the safe repairs of messy headers;
- :mod:`.codes`: the coded concepts (SNOMED CT, LOINC, UCUM, the private 99CMRRISK scheme);
- :mod:`.seg`: label map <-> BINARY DICOM SEG;
- :mod:`.sr`: the measurement report;
- :mod:`.write`: everything written for one segmented DICOM input;
- :mod:`.client`: the DICOMweb client (credentials, QIDO-RS, WADO-RS, STOW-RS all or nothing);
- :mod:`.web`: a study on a server segmented, its results stored back;
- :mod:`.remote`: series named by their DICOMweb address in a cohort manifest, fetched into a cache.

Nothing here imports Slicer; the scene side is :mod:`cmrrisk.mrml.dicomseg`.
"""
