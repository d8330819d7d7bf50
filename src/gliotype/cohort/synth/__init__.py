"""Synthetic glioma cohorts with planted, tunable, per-modality label signal.

>>> from gliotype.cohort.synth import synthesize, parse_signal
>>> synthesize("cohort", n_patients=4, signal=parse_signal("all=0,perfusion=1"))  # doctest: +SKIP

Only the perfusion series of that cohort carries the labels; every other modality follows an
independently drawn decoy genotype. See :mod:`~gliotype.cohort.synth.signal`.
"""

from gliotype.cohort.synth.generate import synthesize
from gliotype.cohort.synth.signal import SIGNAL_KEYS, parse_signal

__all__ = ["SIGNAL_KEYS", "parse_signal", "synthesize"]
