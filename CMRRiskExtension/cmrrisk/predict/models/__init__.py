"""What every model kind is built from (the kinds themselves live in
:mod:`cmrrisk.predict.survival`, :mod:`~cmrrisk.predict.diagnosis` and
:mod:`~cmrrisk.predict.multiinput`; :mod:`cmrrisk.predict.catalog` finds them by name):

- :mod:`.registry`: the :class:`Model` interface and :func:`register`;
- :mod:`.params`: declared, validated hyper-parameters (``parameter_constraints``);
- :mod:`.targets`: outcomes, the one outcome check, risk-group names, horizon parsing;
- :mod:`.baseline`: the Breslow baseline hazard;
- :mod:`.training`: the network training loop (early stopping, cancel, thread limit);
- :mod:`.networks`: the network classes (imports torch; load it only where a network is built).
"""

from .baseline import BreslowBaseline, BreslowMixin, step_at  # noqa: F401
from .params import (COUNT, FRACTION, NON_NEGATIVE, NONE, POSITIVE, Anything, IntList, Interval,  # noqa: F401
                     Options, parameter_names, parse_value, validate)
from .registry import DEFAULTS, Model, build, lookup, register  # noqa: F401
from .targets import (RISK_GROUPS, DiagnosisTarget, SurvivalTarget, check_target, group_names,  # noqa: F401
                      parse_horizons, risk_group)
from .training import (check_interrupt, fit_network, interrupt_hook, seeded, split_validation,  # noqa: F401
                       torch_threads)
