"""Sampling: everything random about one patient, drawn once, before anything is rendered.

``make_params`` is the only place where a patient's sampling generator is used; renderers receive
the resulting :class:`PatientParams` and a separate rendering generator (seeded by
``render_seed``), so a patient can be replayed, and changing the signal changes no draw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gliotype.cohort.synth import anatomy
from gliotype.cohort.synth.effects import mixed_effects
from gliotype.cohort.synth.genotype import Genotype, block_class, sample_decoy, sample_genotype
from gliotype.cohort.synth.signal import SIGNAL_KEYS

SITES: tuple[str, ...] = ("SITE-A", "SITE-B", "SITE-C")


@dataclass
class TumourShape:
    """Label-free shape draws; the geometry effect scales them when rendering.

    Attributes:
        centre_template_mm: Tumour centre in template (MNI) mm, shape (3,).
        rotation: Orientation of the ellipsoid, 3 x 3.
        axes: Relative semi-axes, shape (3,), the largest 1.
        size_factor: Multiplies the core radius of the geometry effect.
        margin_factor: Multiplies the oedema margin of the geometry effect.
        lobe_dirs, lobe_amps, lobe_kappas: K lobes, shapes (K, 3), (K,), (K,).
        rough_freqs, rough_phases, rough_amps: J Fourier surface ripples, (J, 3) in rad/mm, (J,), (J,).
        oedema_dirs, oedema_amps, oedema_kappas: Lobes of the oedema margin.
        patch_freqs, patch_phases: Fourier features of the enhancement patchiness field.
    """

    centre_template_mm: np.ndarray
    rotation: np.ndarray
    axes: np.ndarray
    size_factor: float
    margin_factor: float
    lobe_dirs: np.ndarray
    lobe_amps: np.ndarray
    lobe_kappas: np.ndarray
    rough_freqs: np.ndarray
    rough_phases: np.ndarray
    rough_amps: np.ndarray
    oedema_dirs: np.ndarray
    oedema_amps: np.ndarray
    oedema_kappas: np.ndarray
    patch_freqs: np.ndarray
    patch_phases: np.ndarray


@dataclass
class PatientParams:
    """All draws for one patient.

    Attributes:
        index: 0-based patient index; ``patient_id`` is ``SYN-<index+1:04d>``.
        genotype: The true genotype (the labels).
        decoys: Modality -> decoy genotype.
        effects: Modality -> mixed effect (see :func:`~gliotype.cohort.synth.effects.mixed_effects`).
        site: Acquisition site; sets the scanner's intensity scale and noise.
        jitter: Patient-to-template 4 x 4 matrix.
        shape: Tumour shape draws.
        n_timepoints: Length of the DSC series.
        samples: Histology/RNA sample ids, ``<pid>-L1`` ...
        sample_latents: Per-sample lineage latent, shape (n_samples, 3).
        render_seed: Seed of the rendering generator.
    """

    index: int
    genotype: Genotype
    decoys: dict[str, Genotype]
    effects: dict[str, dict[str, float]]
    site: str
    jitter: np.ndarray
    shape: TumourShape
    n_timepoints: int
    samples: list[str]
    sample_latents: np.ndarray
    render_seed: int
    extra: dict = field(default_factory=dict)

    @property
    def patient_id(self) -> str:
        """``SYN-0001`` for index 0."""
        return patient_id(self.index)


def patient_id(index: int) -> str:
    """Patient id of a 0-based index: ``SYN-0001``, ``SYN-0002``, ..."""
    return f"SYN-{index + 1:04d}"


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _centre(frontal: float, u: float, pick: float) -> np.ndarray:
    front, other = anatomy.location_candidates()
    pool = front if u < frontal else other
    return pool[min(int(pick * len(pool)), len(pool) - 1)]


def _shape(rng: np.random.Generator, frontal: float) -> TumourShape:
    u, pick = rng.random(2)
    wavelength = rng.uniform(7.0, 14.0, size=12)
    return TumourShape(
        centre_template_mm=_centre(frontal, u, pick) + rng.uniform(-1, 1, 3),
        rotation=_rotation(rng),
        axes=np.sort(rng.uniform(0.75, 1.0, 3))[::-1] / 1.0,
        size_factor=float(np.exp(rng.normal(0, 0.12))),
        margin_factor=float(np.exp(rng.normal(0, 0.2))),
        lobe_dirs=_unit(rng, 7),
        lobe_amps=rng.uniform(-1.0, 1.0, 7),
        lobe_kappas=rng.uniform(3.0, 9.0, 7),
        rough_freqs=_unit(rng, 12) * (2 * np.pi / wavelength)[:, None],
        rough_phases=rng.uniform(0, 2 * np.pi, 12),
        rough_amps=rng.normal(0, 1, 12) / np.sqrt(12),
        oedema_dirs=_unit(rng, 5),
        oedema_amps=rng.uniform(-0.6, 1.0, 5),
        oedema_kappas=rng.uniform(2.0, 6.0, 5),
        patch_freqs=_unit(rng, 8) * (2 * np.pi / rng.uniform(10.0, 25.0, 8))[:, None],
        patch_phases=rng.uniform(0, 2 * np.pi, 8),
    )


def make_params(
    seed: int, index: int, signal: Mapping[str, float], n_timepoints: int | None = None
) -> PatientParams:
    """Draw every random quantity of patient ``index`` from a generator seeded by (seed, index).

    Args:
        seed: Cohort seed.
        index: 0-based patient index.
        signal: Complete signal mapping (see :func:`~gliotype.cohort.synth.signal.resolve_signal`).
        n_timepoints: DSC length; ``None`` draws it in 45..60.
    """
    rng = np.random.default_rng([seed, index, 1])
    genotype = sample_genotype(block_class(seed, index), rng)
    decoys = {key: sample_decoy(rng) for key in SIGNAL_KEYS}
    effects = mixed_effects(genotype, decoys, signal)
    site = str(rng.choice(SITES))
    jitter = anatomy.jitter_matrix(
        rng.normal(1.0, 0.03, 3), rng.normal(0, 2.5, 3), rng.normal(0, 2.0, 3)
    )
    shape = _shape(rng, effects["location"]["frontal"])
    n_t = int(rng.integers(45, 61))
    n_samples = int(rng.integers(2, 4))
    pid = patient_id(index)
    return PatientParams(
        index=index,
        genotype=genotype,
        decoys=decoys,
        effects=effects,
        site=site,
        jitter=jitter,
        shape=shape,
        n_timepoints=int(n_timepoints) if n_timepoints is not None else n_t,
        samples=[f"{pid}-L{k + 1}" for k in range(n_samples)],
        sample_latents=rng.normal(size=(n_samples, 3)),
        render_seed=int(rng.integers(2**62)),
    )
