"""The resolved configuration of a run: typed, saved as ``config.yaml`` next to every output, never evaluated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gliotype import __version__
from gliotype.methods.base import MethodConfig
from gliotype.methods.registry import MethodSpec


class RunConfig(BaseModel):
    """Everything needed to rerun ``gliotype train``."""

    model_config = ConfigDict(extra="forbid")

    cohort: str
    method: str
    target: str
    folds: int = Field(5, ge=1)
    holdout: float | None = Field(None, gt=0, lt=1)
    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of each training fold kept for early stopping")
    seed: int = 0
    epochs: int | None = Field(None, ge=1, description="overrides the method's epochs")
    method_config: dict[str, Any] = Field(default_factory=dict)
    gliotype_version: str = __version__

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def from_yaml(cls, path: Path) -> RunConfig:
        return cls(**yaml.safe_load(path.read_text()))

    def same_experiment(self, other: RunConfig) -> bool:
        """Whether two configs describe the same run (the package version may differ)."""
        mine, theirs = self.model_dump(exclude={"gliotype_version"}), other.model_dump(exclude={"gliotype_version"})
        return mine == theirs


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["lr=1e-4", "region=whole"]`` -> ``{"lr": 0.0001, "region": "whole"}`` (values parsed as YAML scalars)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def method_config(spec: MethodSpec, config_file: Path | None = None, overrides: dict | None = None) -> MethodConfig:
    """A method's typed configuration: defaults, then ``config_file`` (YAML), then ``overrides``."""
    values: dict[str, Any] = {}
    if config_file is not None:
        loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: expected a mapping of option: value, got {type(loaded).__name__}")
        values.update(loaded.get("method_config", loaded))
    values.update(overrides or {})
    try:
        return spec.config_type(**values)
    except ValidationError as err:
        known = sorted(spec.config_type.model_fields)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ValueError(f"bad configuration for {spec.name!r}: {problems}. Options: {known}") from None
