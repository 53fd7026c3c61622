"""Step 3a of the pipeline: image-derived features per subject.

* :mod:`.indices` - clinical indices (volumes, EF, mass, wall thickness, scar burden)
* :mod:`.radiomics` - pyradiomics features per region and phase from a bundled parameter file
* :mod:`.deep` - a fixed-length embedding from the bundled segmentation network's encoder
* :mod:`.cohort` - all of them for a whole manifest: parallel, cached, with provenance
"""
