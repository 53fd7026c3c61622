"""A TRIPOD+AI-style report of one or several prediction models: ``cmrrisk report``.

:func:`write_report` (:mod:`.build`) evaluates every model directory on an optional held-out /
external manifest, reads what the model directories, a QC report and explanation folders hold,
and writes one self-contained HTML file. The package:

- :mod:`.context`: :class:`ReportContext`, everything the sections show;
- :mod:`.data`: cohort descriptions, QC and explanation reading, models (loading, evaluation with
  per-subject predictions), subgroups;
- :mod:`.figures`: the figures; :mod:`.format`: numbers, the HTML builder and its CSS;
- :mod:`.limitations`: limitations derived from the data;
- :mod:`.sections_cohort`, :mod:`.sections_methods`, :mod:`.sections_results`: one function per
  section, each ``section_x(H, ctx)``;
- :mod:`.build`: :func:`write_report`; :mod:`.command`: the ``report`` subcommand.
"""

from .build import write_report  # noqa: F401
from .command import add_commands, cmd_report  # noqa: F401
from .data import describe_manifest, evaluate_model, load_model_info  # noqa: F401
from .figures import km_curves  # noqa: F401
from .format import ITEMS  # noqa: F401
