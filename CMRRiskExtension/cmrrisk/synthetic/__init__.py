"""Synthetic CMR cohort with a known hazard: the embedded default cohort.

:func:`generate_cohort` writes, for each of ``n`` subjects, short-axis cine end-diastole
(``cine_ed``), end-systole (``cine_es``) and LGE (``lge``) volumes with their ground-truth label
maps (``*_seg``, project labels: 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool,
4 scar, 5 MVO; the LGE label map holds 1, 2, 4, 5 and no RV, like the LGE model's output), a
cohort manifest ``manifest.csv`` and ``synthetic.json`` describing the generative model.

Generative model (every number is in ``synthetic.json``):

* **Geometry**: RAS affine ``diag(-s, -s, dz)`` (the orientation of ACDC), in-plane spacing
  ``s`` ~ U(1.35, 1.65) mm, slices ``dz`` in {8, 10} mm, 8-10 slices, matrix 208-240 rows x
  240-256 columns (field of view ~370 mm; ACDC 380 [352, 400]); slice 0 is the base in the cine
  and the apex in the LGE (version 4, see below).
* **Anatomy**: the LV cavity and epicardium are truncated ellipsoids (equator at the base) with
  elliptical cross-sections, a slightly tilted long axis, ED wall 6-12 mm and a myocardial apex
  cap; papillary muscles inside the cavity (labelled blood pool, as in ACDC); the RV blood pool is
  an ellipse abutting the septum (outside the LV epicardium) with a thin free wall, shorter
  than the LV; body (fat layer, chest-wall muscle), lungs (dark), liver, descending aorta and
  spine surround the heart.
  **Version 3** (every number measured on ACDC by ``bench/measure_real_appearance.py``): LV
  size from ACDC's mid-ventricular ED cavity diameter against LVEF (51 mm at 55 %, -0.36 mm per
  point, residual SD 6.3 mm; version 2 was 11 mm smaller); RV rebuilt as a compact
  (triangular) chamber: solidity 0.77, angular extent around the LV ~108 deg, depth 0.53 x LV
  diameter, RV / LV cavity area 1.45 / 0.78 / 0.45 base / mid / apex, RV / LV volume 0.99, and
  at ES the free wall moves towards the septum (constants :data:`RV_SHAPE`); the body fills the
  field of view (ACDC: 75 % of the image above air; version 2 40 %); the lungs keep 6-18 mm of
  soft tissue from the heart (ACDC: 20 % of the 15 mm band around the heart is lung-dark,
  version 2 46 %), a lateral fat pad 1.5-7.5 mm outside the LV and atrial blood beside basal
  slices (ACDC: 16-21 % of that band brighter than 0.35, version 2 6 %); cine blur
  U(1.1, 1.6) mm (ACDC endocardial edge width 3.7 mm, version 2 3.4 mm).
* **Systole**: the ES cavity is the ED cavity scaled in-plane by a factor found by bisection so
  that the label maps' LVEF equals the subject's target EF (20-70 %), with 10 % long-axis
  shortening at EF 60 %; the myocardial area of each slice is conserved (the wall thickens);
  the RV contracts with its own EF. ``true_lvef`` is measured on the written label maps
  (:func:`cmrrisk.metrics.clinical_indices`), so it is exact for them.
* **Cine contrast** (bSSFP-like, version 2): blood 2.2-3.5 x myocardium, fat 1.2-1.45 x blood
  (so that, after the models' 0.5/99.5-percentile normalisation, blood sits at ~0.65 and
  myocardium at ~0.24 as in ACDC: 0.70 and 0.23), RV blood 0.74-0.86 x LV blood (ACDC 0.75),
  dark lungs reaching the heart, papillary muscles of constant size (0.22 x ED cavity radius
  + 1.5 mm) and endocardial trabeculation (radial spikes; version 4: see below), all labelled blood
  pool as in ACDC (dark fraction of the labelled cavity: ACDC 0.21 ED / 0.31 ES), smooth
  myocardial texture (ACDC heterogeneity 0.11 x blood-myocardium contrast).
  **RV**: RVEF target lowered by RVEF_SHIFT (ACDC RV ES / ED volume 0.54).
  **LGE** (phase-sensitive inversion recovery, as exported by EMIDEC, version 2): 8-bit grey
  levels with zero signal (air, nulled remote myocardium) at a mid-grey offset U(130, 143)
  (EMIDEC air 135), remote myocardium offset + U(0, 10) (EMIDEC +5), blood remote + U(12, 21)
  (EMIDEC +15), scar = blood + U(-3, 6) (EMIDEC scar - blood +2), MVO between remote and scar
  (EMIDEC MVO - remote +12), lungs below the offset (EMIDEC darkest 1 %: -37), fat offset +
  U(65, 90) (EMIDEC 99.5th percentile +83), an epicardial band (versions 1-5: a thin bright fat
  rim; version 6: see below), myocardial texture
  (versions 2-4: SD 0.4 x (blood - remote) in ~1 mm blotches, matching EMIDEC's eroded-myocardium
  SD 6.6 grey; version 5: see below), Gaussian noise SD 1.1-1.6 grey
  (EMIDEC 1.4), zero fill along one or two edges over 5-19 % of the image (EMIDEC 11 %, IQR
  6-19 %). Scar is ~2 robust SD of remote above it, as measured on EMIDEC.
  The reference values (:data:`REFERENCE`) come from ``bench/measure_real_appearance.py``
  (``bench/results/real_vs_synthetic_appearance.json``), which measures the same properties
  on a synthetic cohort.
* **Scar**: in 65 % of subjects, a wedge in one coronary territory (LAD anteroseptal, RCA
  inferior, LCx lateral) over a range of slices, transmural or subendocardial
  (transmurality 0.3-1 of the wall from the endocardium); MVO core in ~40 % of scars of
  transmurality > 0.6. ``true_scar_burden`` (% of LV myocardium) is measured on the LGE labels.
* **Image formation**: 2x in-plane supersampling (partial volume), Gaussian blur, smooth
  multiplicative coil shading; cine: Rician noise, int16; LGE: Gaussian noise on the signed
  signal, offset, 8-bit quantisation (values 0-255 stored as int16), edge zero fill.
* **Version 4** (the bundled models' Dice on these images; every change grounded in a
  property that ``bench/measure_real_appearance.py`` measures on ACDC / EMIDEC and on this
  generator, ``bench/results/real_vs_synthetic_appearance.json``):

  - *LGE slice order*: EMIDEC stacks are stored apex first (``first_slice_apical`` 1.0: 75 of 75
    stacks; ACDC cine 0 of 34, base first). The LGE image and its labels are now written apex
    first (:data:`APEX_FIRST`) with an index-to-RAS matrix that keeps every voxel's world
    position (the cine stays base first). The 2.5D LGE model reads neighbouring slices as
    channels and was trained on apex-first stacks: on 4 version-3 subjects, reversing the stack
    alone raised its LV Dice 0.81 -> 0.94 and myocardium 0.69 -> 0.83 (it missed whole
    mid-apical slices of base-first stacks).
  - *Endocardial trabeculation* (:data:`TRABECULAE`): a layer of radial muscle spikes whose
    density falls with depth inside the labelled cavity, replacing version 3's sparse 1.5-3 mm
    band (which existed only near the long axis of the elliptical cavity). Intensity profile
    across the annotated endocardium, (I - myocardium) / (blood - myocardium) at 3-4.5 / 1.5-3 /
    0-1.5 mm inside and 0-1.5 mm outside: ACDC ED 0.77 / 0.64 / 0.37 / 0.07, version 3 0.94 /
    0.84 / 0.52 / 0.15, version 4 0.86 / 0.63 / 0.32 / 0.08 (EMIDEC 0.91 / 0.77 / 0.50 inside,
    version 3 0.95 / 0.88 / 0.70, version 4 0.88 / 0.69 / 0.50); dark fraction of the cavity
    ACDC 0.21 ED / 0.31 ES, version 4 0.23 / 0.31.
  - *Apical coverage*: the ED endocardial apex lies 0.2-3 mm beyond the last slice's centre, so
    that every slice holds LV labels and the apical slice cuts the cavity as in ACDC (ED: 34 of
    34 frames, apical LV area 0.19 [0.13, 0.28] of the largest slice) and EMIDEC (75 of 75
    stacks); version 3 had empty slices (5 %) and myocardium-only apical caps in ~75 % of
    frames, which the models did not segment. Long-axis shortening now applies at ES only (not
    at the LGE's mid-diastole).
  - Tried and *not* kept (they matched a measured property better but lowered the models' Dice
    on the synthetic images): an LGE epicardial band as dim / wide as EMIDEC's (0.46 / 0.64 /
    0.57 / 0.48 x (blood - remote) at 0-1.5 / 1.5-3 / 3-4.5 / 4.5-7.5 mm outside the LV; the kept
    fat rim gives ~1.3 / 1.0 / 0.5 / 0.25; myocardium Dice -0.01 to -0.11, scar +0.06 to +0.16),
    and a cine lateral fat pad on the epicardium with lung reaching the lateral wall (ACDC's
    0-1.5 mm band: 64 % within 0.2 x (blood - myocardium) of the myocardium, 13 % darker, 15 %
    brighter; version 3 84 / 3 / 12 %): ED myocardium Dice about unchanged, ES -0.05 (version 8
    replaces the pad by a band matched to ACDC, see below).
* **Version 5**: the LGE myocardial texture is smoother and weaker
  (:data:`LGE_TEXTURE`): version 4's ~1 mm blotches of SD 0.4 x (blood - remote) matched EMIDEC's
  overall myocardial SD but not its spatial scale: the local-mean variation of healthy
  myocardium (mid slices, / (blood - myocardium)) was 0.268 against EMIDEC's 0.231 and the
  pixel-scale residual 0.106 against 0.050 (now 0.236 / 0.086). The lge model called much of
  that blotchy myocardium background (volume 0.79 of the truth on the synthetic stacks, 0.99 on
  held-out EMIDEC).
* **Version 6**: the LGE epicardial band (:data:`LGE_EPI_RIM`). Versions 1-5 drew a
  1.5 mm rim (+1 mm laterally) at 0.6 x fat, 2-3 x as bright as blood; just outside the
  epicardium EMIDEC is only 0.46 / 0.64 / 0.57 / 0.48 x (blood - remote) above remote at 0-1.5 /
  1.5-3 / 3-4.5 / 4.5-7.5 mm (bench/measure_real_appearance.py, 6 subjects: version 5 1.32 / 1.00 /
  0.54 / 0.23, version 6 0.53 / 0.65 / 0.63 / 0.44). With the bright rim, transmural scar (as bright as blood, as in EMIDEC) next to
  a brighter rim was often called healthy myocardium or background by the lge model: on 12
  synthetic subjects (seed 0, test-time flips) the scar Dice of two transmural LAD / LCx scars
  was 0.22 and 0.37 and the mean absolute scar-burden error 9.3 pp (one run); with the
  version-6 band LV / myocardium / scar Dice 0.946 / 0.845 / 0.660 -> 0.934 / 0.869 / 0.699 and
  burden error 6.0 pp (bench/eval_synthetic_segmentation.py; seed 1: Dice 0.945 / 0.856 / 0.611
  -> 0.934 / 0.873 / 0.611, burden error 7.9 pp, every scar subject measured low) (the exploration that chose the band measured realism first and Dice second; the version-4 test
  of a dim band, with version 4's blotchy texture, had lowered myocardium Dice, see above).
* **Version 7**: the LGE epicardial band's level varies around the LV
  (:data:`LGE_EPI_RIM`: ``level`` + ``spread`` x a smooth random function of the angle).
  Version 6's band was uniform: of the 0-3 mm band outside the epicardium 0 % was darker than
  remote by more than 0.25 x (blood - remote), 5 % within 0.25 of remote and 95 % brighter;
  EMIDEC 14 / 20 / 64 %, version 7 16 / 21 / 69 % (bench/measure_real_appearance.py,
  ``epi_out_frac_*``, 6 subjects; profile 0.46 / 0.69 / 0.61 / 0.28 against EMIDEC's 0.46 / 0.64
  / 0.57 / 0.48). The setting was the first one tried, chosen from these figures alone. Where the
  band is myocardium-like or dark the epicardial edge is harder to see, and the lge model's
  synthetic myocardium Dice fell (bench/eval_synthetic_segmentation.py, 12 subjects, seeds 0 / 1:
  0.869 / 0.873 -> 0.843 / 0.859; scar 0.699 / 0.611 -> 0.698 / 0.573; held-out EMIDEC 0.823),
  while the mean absolute scar-burden error moved 6.0 / 7.9 -> 5.2 / 7.4 pp.
* **Version 8**: the cine band just outside the LV epicardium (:data:`CINE_EPI_BAND`)
  replaces the lateral fat pad of versions 3-7. ACDC's 0-3 mm band is mostly myocardium-like
  with dark (11 %) and bright (17 %) parts around the LV (the dark line of bSSFP at fat-water
  borders, pericardium, fat); version 7 had almost no dark pixels (1 %) and a bright pad (31 %),
  so the epicardial edge was easier to see than on real images. With the band the cine model's
  synthetic myocardium Dice fell (docs/validation.md); LGE images differ from version 7's only
  because the random stream moved (same generative model).
* **Outcome**: ``log h = b_ef (50 - LVEF)/10 + b_scar scar/10 + b_age (age - 60)/10
  + b_dm diabetes + b_sex sex``; Weibull baseline ``h0(t) = lambda k t^(k-1)``; independent
  censoring (administrative U(3, 10) years and exponential drop-out); time in years.

Columns whose names start with ``true_`` (``true_lvef``, ``true_scar_burden``,
``true_log_hazard``) are the generator's truth: exclude them from any model's inputs (they would
leak the outcome). :func:`oracle_c_index` is Harrell's C of ``true_log_hazard``: the ceiling that
any model's C-index on the cohort should be reported beside.
"""

from __future__ import annotations

from .. import labels as L  # noqa: F401
from .model import (  # noqa: F401
    COLUMNS,
    HAZARD,
    TRUE_COLUMNS,
    VERSION,
    draw_subject,
    hazard_formula,
    log_hazard,
)
from .shapes import (  # noqa: F401
    AUX_MARGIN_MM,
    RVEF_SHIFT,
    RV_SHAPE,
    TERRITORIES,
    ellipse,
    grid,
    labels_slice,
    subject_labels,
)
from .render import (  # noqa: F401
    APEX_FIRST,
    CINE_EPI_BAND,
    CINE_NOISE_FACTOR,
    LGE_EPI_RIM,
    LGE_TEXTURE,
    REFERENCE,
    TRABECULAE,
    affine,
    affine_apex_first,
    render_subject,
)
from .cohort import (  # noqa: F401
    add_commands,
    cmd_synth,
    cohort_truth,
    generate_cohort,
    oracle_c_index,
    rows_time_event,
)
