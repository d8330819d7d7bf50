"""The method registry: every method and baseline, created by name and listable.

Example:
    >>> from gliotype.methods import create_method, list_methods
    >>> [m.name for m in list_methods()][:2]          # doctest: +SKIP
    ['densenet3d', 'resnet3d']
    >>> method = create_method("rnaseq-lr", C=0.5)     # doctest: +SKIP
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gliotype.cohort.labels import TARGETS

if TYPE_CHECKING:
    from gliotype.methods.base import Method, MethodConfig


@dataclass(frozen=True)
class MethodSpec:
    """What the registry knows of a method without building it."""

    name: str
    factory: type[Method]
    config_type: type[MethodConfig]
    modalities: tuple[str, ...]
    targets: tuple[str, ...]
    description: str


METHODS: dict[str, MethodSpec] = {}
RETRIEVAL_TARGETS: tuple[str, ...] = ("lineage", "patient")
"""Targets of retrieval methods (``wsi-rna``): which pairs of a patch and an RNA sample belong together."""


def register_method(name: str, *, config: type[MethodConfig], modalities: Sequence[str],
                    targets: Sequence[str] = tuple(TARGETS), description: str = ""):
    """Class decorator registering a :class:`Method` under ``name``."""

    def decorate(cls):
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice ({METHODS[name].factory} and {cls})")
        doc = description or (cls.__doc__ or "").strip().splitlines()[0]
        METHODS[name] = MethodSpec(name, cls, config, tuple(modalities), tuple(targets), doc)
        cls.name = name
        return cls

    return decorate


def get_spec(name: str) -> MethodSpec:
    """The spec of a registered method; an unknown name lists the known ones and the closest."""
    _load_builtin()
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown method {name!r}{hint} Known methods: {sorted(METHODS)}")
    return METHODS[name]


def create_method(name: str, **config) -> Method:
    """Build a method with its typed configuration (defaults from METHODS.md, overridden by ``config``)."""
    spec = get_spec(name)
    return spec.factory(spec.config_type(**config))


def list_methods() -> list[MethodSpec]:
    _load_builtin()
    return [METHODS[n] for n in sorted(METHODS)]


def check_target(spec: MethodSpec, target: str) -> None:
    if target not in TARGETS and target not in RETRIEVAL_TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {list(TARGETS)} (retrieval methods: "
                         f"{list(RETRIEVAL_TARGETS)})")
    if target not in spec.targets:
        raise ValueError(f"method {spec.name!r} does not predict {target!r}; it supports {list(spec.targets)}")


def _load_builtin() -> None:
    """Import the built-in method modules (they register themselves)."""
    from gliotype.methods import (  # noqa: F401
        brainnet, cnn3d, colearn, fof, fusion, gliomt, hiperfgnn, monai3d, perfgat, pointgnn, rnaseq, rnaseq_lr,
        rnaseq_svm, wsi_rna)
