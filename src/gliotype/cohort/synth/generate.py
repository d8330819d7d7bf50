"""``synthesize``: write a whole synthetic cohort in the Contract 1 layout."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gliotype.cohort.synth import io, rnaseq
from gliotype.cohort.synth.dsc import TR_S
from gliotype.cohort.synth.genotype import CNV_GENES
from gliotype.cohort.synth.grids import check_size, dsc_grid, structural_grid
from gliotype.cohort.synth.network import AWAY_RHO, TRACT_GROUPS
from gliotype.cohort.synth.params import PatientParams, make_params
from gliotype.cohort.synth.patient import OPTIONAL, write_patient
from gliotype.cohort.synth.signal import resolve_signal

logger = logging.getLogger(__name__)
VERSION = "1.0"


class _Serial:
    """The in-process stand-in for a process pool (``map`` only)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    map = staticmethod(map)


def _check_args(n_patients: int, seed: int, n_timepoints: int | None) -> None:
    if isinstance(n_patients, bool) or not isinstance(n_patients, (int, np.integer)) or n_patients < 1:
        msg = f"n_patients must be a positive integer, got {n_patients!r}"
        raise ValueError(msg)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        msg = f"seed must be a non-negative integer, got {seed!r}"
        raise ValueError(msg)
    if n_timepoints is not None and (not isinstance(n_timepoints, (int, np.integer)) or n_timepoints < 8):
        msg = f"n_timepoints must be None (45-60, drawn per patient) or an integer >= 8, got {n_timepoints!r}"
        raise ValueError(msg)


def _label_row(p: PatientParams) -> dict:
    g = p.genotype
    row = {"patient_id": p.patient_id, "idh": g.idh, "codel_1p19q": g.codel_1p19q, "grade": g.grade}
    row["site"] = p.site
    row.update({f"cnv_{gene}": g.cnv[gene] for gene in CNV_GENES})
    return row


def _rna_rows(p: PatientParams, space: rnaseq.GeneSpace, seed: int) -> tuple[list[dict], dict]:
    rng = np.random.default_rng([seed, p.index, 3])
    specific = rnaseq.lineage_genes(space, len(p.samples), rng)
    values = rnaseq.expression(space, p.effects["rnaseq"], p.sample_latents, specific, rng)
    rows = [
        {"patient_id": p.patient_id, "sample_id": sid, **dict(zip(space.genes, x))}
        for sid, x in zip(p.samples, values)
    ]
    return rows, dict(zip(p.samples, specific))


def _patient_truth(p: PatientParams, rendered: dict, specific: dict) -> dict:
    return {
        "index": p.index,
        "site": p.site,
        "n_timepoints": p.n_timepoints,
        "tumour_centre_template_mm": np.round(p.shape.centre_template_mm, 3).tolist(),
        **rendered,
        "samples": list(p.samples),
        "sample_latents": np.round(p.sample_latents, 4).tolist(),
        "lineage_genes": specific,
        "genotype": p.genotype.to_dict(),
        "decoys": {k: g.to_dict() for k, g in p.decoys.items()},
        "effects": {k: {n: round(v, 6) for n, v in e.items()} for k, e in p.effects.items()},
        "jitter": np.round(p.jitter, 6).tolist(),
    }


def _header(seed, size, signal, n_timepoints, n_patients, space) -> dict:
    return {
        "generator": "gliotype.cohort.synth",
        "version": VERSION,
        "seed": int(seed),
        "size": size,
        "signal": signal,
        "n_timepoints": n_timepoints,
        "n_patients": int(n_patients),
        "grids": {"structural": structural_grid(size).to_dict(), "dsc": dsc_grid(size).to_dict()},
        "dsc_tr_s": TR_S,
        "modules": space.modules(),
        "genotype_shifts": rnaseq.GENOTYPE_SHIFTS,
        "lineage_module": rnaseq.LINEAGE_MODULE,
        "cnv_dose": rnaseq.CNV_DOSE,
        "tract_groups": {k: {a: list(b) for a, b in v.items()} for k, v in TRACT_GROUPS.items()},
        "tract_away_rho": AWAY_RHO,
    }


def synthesize(
    out: str | Path,
    n_patients: int = 40,
    seed: int = 0,
    size: Literal["small", "full"] = "small",
    signal: Mapping[str, float] | None = None,
    n_timepoints: int | None = None,
    progress: bool = False,
    optional: Sequence[str] = OPTIONAL,
    workers: int = 1,
) -> Path:
    """Write a synthetic glioma cohort in the Contract 1 layout.

    Writes ``labels.csv``, ``rnaseq.tsv`` (rows = samples: ``patient_id, sample_id, <genes>``),
    ``ppi.csv``, ``synth.json`` (parameters and ground truth) and, per patient, ``<pid>-t1n/-t1c/
    -t2w/-t2f/-seg/-fa.nii.gz``, a 4-D ``<pid>-dsc.nii.gz`` (time last) and ``histology/`` tiles
    ``<sample_id>_roi<k>.png`` (plus ``<pid>-slide.tif`` for ``full``). The same arguments give
    byte-identical files.

    Args:
        out: Output folder (created; existing files of the same names are overwritten).
        n_patients: Number of patients, >= 1.
        seed: Cohort seed, >= 0; patient i draws from a generator seeded by (seed, i).
        size: ``"small"`` (2 mm MNI grid, 91 x 109 x 91) or ``"full"`` (BraTS 240 x 240 x 155, 1 mm;
            DSC on a 2 mm grid 120 x 120 x 78 covering the same field of view).
        signal: Per-modality label signal in [0, 1] (keys of ``SIGNAL_KEYS``; missing keys 1.0).
        n_timepoints: DSC length; ``None`` draws 45-60 per patient.
        progress: Log one INFO line per patient.
        optional: Which of ``fa``, ``dsc``, ``histology`` to write (default all); leaving some out is
            faster and changes none of the other files.
        workers: Processes rendering patients in parallel (the files do not depend on it).

    Returns:
        The output folder as a :class:`~pathlib.Path`.

    Raises:
        ValueError: On an invalid size, signal key or value, patient count, seed or length.
    """
    check_size(size)
    _check_args(n_patients, seed, n_timepoints)
    unknown = set(optional) - set(OPTIONAL)
    if unknown:
        raise ValueError(f"optional modalities {sorted(unknown)} unknown; choose among {', '.join(OPTIONAL)}")
    resolved = resolve_signal(signal)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    space = rnaseq.make_gene_space(seed)
    labels, rna, patients = [], [], {}
    drawn = [make_params(int(seed), index, resolved, n_timepoints) for index in range(int(n_patients))]
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Serial() as pool:
        written = pool.map(write_patient, [root] * len(drawn), drawn, [size] * len(drawn), [tuple(optional)] * len(drawn))
        for index, (params, rendered) in enumerate(zip(drawn, written)):
            rows, specific = _rna_rows(params, space, int(seed))
            labels.append(_label_row(params))
            rna += rows
            patients[params.patient_id] = _patient_truth(params, rendered, specific)
            if progress:
                logger.info("synthesised %s (%d/%d)", params.patient_id, index + 1, n_patients)
    io.write_table(root / "labels.csv", pd.DataFrame(labels))
    io.write_table(root / "rnaseq.tsv", pd.DataFrame(rna), sep="\t")
    io.write_table(root / "ppi.csv", rnaseq.ppi_table(space, int(seed)))
    meta = _header(seed, size, resolved, n_timepoints, n_patients, space)
    meta["optional_modalities"] = list(optional)
    meta["patients"] = patients
    io.write_json(root / "synth.json", meta)
    return root
