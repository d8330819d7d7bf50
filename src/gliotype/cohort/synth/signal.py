"""Per-modality label signal: how much of each modality's appearance follows the true genotype.

A signal ``s`` in ``[0, 1]`` mixes two phenotype effects for a patient and a modality::

    effect = s * effect(true genotype) + (1 - s) * effect(decoy genotype)

where the decoy genotype is drawn independently of the true one for that patient and modality. With
``s = 0`` the modality looks just as realistic but carries no information about the labels.
"""

from __future__ import annotations

from collections.abc import Mapping

SIGNAL_KEYS: tuple[str, ...] = (
    "geometry",
    "texture",
    "enhancement",
    "location",
    "perfusion",
    "network",
    "histology",
    "rnaseq",
)
"""Modalities whose label signal can be tuned, in a fixed order."""


def _check_key(key: str) -> None:
    if key not in SIGNAL_KEYS:
        msg = f"Unknown signal key {key!r}; valid keys are {', '.join(SIGNAL_KEYS)}"
        raise ValueError(msg)


def _check_value(key: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        msg = f"Signal {key!r} must be a number in [0, 1], got {value!r}"
        raise ValueError(msg) from None
    if not 0.0 <= number <= 1.0:
        msg = f"Signal {key!r} must lie in [0, 1], got {value!r}"
        raise ValueError(msg)
    return number


def parse_signal(text: str) -> dict[str, float]:
    """Parse ``"geometry=1.0,perfusion=0"`` into ``{"geometry": 1.0, "perfusion": 0.0}``.

    Only the keys named in ``text`` are returned; :func:`resolve_signal` fills in the defaults.
    The key ``all`` sets every modality at once and may be overridden by later keys
    (``"all=0,perfusion=1"``: only perfusion carries the label).

    Args:
        text: Comma-separated ``key=value`` pairs; whitespace is ignored; empty gives ``{}``.

    Returns:
        Mapping from signal key to a value in ``[0, 1]``.

    Raises:
        ValueError: On an unknown key (the message lists :data:`SIGNAL_KEYS`), a missing ``=``,
            or a value that is not a number in ``[0, 1]``.
    """
    result: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if "=" not in item:
            msg = f"Signal item {item!r} must look like key=value, e.g. 'perfusion=0.5'"
            raise ValueError(msg)
        key, value = (side.strip() for side in item.split("=", 1))
        if key == "all":
            number = _check_value(key, value)
            result.update({name: number for name in SIGNAL_KEYS})
            continue
        _check_key(key)
        result[key] = _check_value(key, value)
    return result


def resolve_signal(signal: Mapping[str, float] | str | None) -> dict[str, float]:
    """Complete a partial signal mapping with the default 1.0 for every missing key.

    Args:
        signal: ``None`` (all 1.0), a mapping of some keys, or a string for :func:`parse_signal`.

    Returns:
        A mapping with exactly the keys of :data:`SIGNAL_KEYS`, in that order.
    """
    if isinstance(signal, str):
        signal = parse_signal(signal)
    given = dict(signal or {})
    for key, value in given.items():
        _check_key(key)
        given[key] = _check_value(key, value)
    return {key: float(given.get(key, 1.0)) for key in SIGNAL_KEYS}
