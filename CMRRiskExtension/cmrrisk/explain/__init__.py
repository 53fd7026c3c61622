"""Explanations of prediction models (pipeline step 4).

- :mod:`.saliency`: image saliency with captum (Grad-CAM, Integrated Gradients, GradientShap,
  Occlusion) on the multi-input network's grid, and sanity checks (positive share inside a mask,
  model-randomisation test with Spearman rank correlation);
- :mod:`.attributions`: per-subject covariate attributions (IG / GradientShap through an image
  network's covariate branch, KernelShap for any other model) and cohort importance (mean
  |attribution|, permutation importance on accuracy or Harrell's C);
- :mod:`.examples`: the most similar reference subjects in the model's latent space;
- :mod:`.text`: a short sentence per prediction;
- :mod:`.core`: one subject's explanation (heatmaps with the input's exact geometry) and writing
  it (NIfTI, CSV, JSON, PNG);
- :mod:`.commands`: the ``cmrrisk explain`` subcommand.

Nothing here imports slicer or qt; :mod:`cmrrisk.mrml.heatmap` shows heatmaps in a scene.
"""
