"""The report context: everything the report's sections show, gathered once by
:func:`~.build.write_report` and handed to every ``section_x(H, ctx)``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReportContext:
    """What one report is about and what was computed for it.

    ``infos``: one dict per model (:func:`~.data.load_model_info`, plus its label and
    development counts); ``train_desc`` / ``test_desc``: :func:`~.data.describe_manifest` of
    the manifests (None when absent); ``test_res`` / ``app_res``: evaluation results per model
    label on the test manifest and (apparent) on the development manifest; ``qc_rep``: the QC
    report (None when absent) and ``qc_in``: QC-excluded subjects per manifest role; ``expl``:
    the explanation items; ``figs``: figure name -> base64 PNG; ``lims``: limitations;
    ``subgroups``: performance per subgroup."""

    endpoint: str
    infos: list
    train_manifest: str | None = None
    test_manifest: str | None = None
    train_desc: dict | None = None
    test_desc: dict | None = None
    overlap: int = 0
    has_test: bool = False
    apparent: bool = False
    n_boot: int = 200
    seed: int = 0
    extra: dict = field(default_factory=dict)
    qc_rep: dict | None = None
    qc_in: dict = field(default_factory=dict)
    expl: dict = field(default_factory=lambda: {"items": [], "total": 0})
    test_res: dict = field(default_factory=dict)
    app_res: dict = field(default_factory=dict)
    lims: list = field(default_factory=list)
    figs: dict = field(default_factory=dict)
    subgroups: dict = field(default_factory=dict)
    version: str = ""

    @property
    def on_test(self) -> bool:
        """Subgroups and the summary are on the test data (else on the development data)."""
        return bool(self.test_res)
