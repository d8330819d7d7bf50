"""Opening every file of a cohort and finding what makes a patient unusable.

Each problem names the patient, the file, what is wrong and how to fix it. A bad patient is listed and
left out; the rest of the cohort stays usable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gliotype.cohort import layout
from gliotype.cohort.case import Case, Cohort, Problem
from gliotype.cohort.images import Grid, ImageError, grid_of, load_nifti, read_array
from gliotype.cohort.regions import BRATS_LABELS, label_values

log = logging.getLogger(__name__)

WHOLE_PATIENT = frozenset({None, "labels"})
"""Problems with these make the whole patient unusable; others only the modality they name."""


@dataclass
class ValidationReport:
    """The result of :func:`validate`: every case, its problems, and which patients are usable."""

    cohort: Cohort
    problems: list[Problem] = field(default_factory=list)

    def bad_modalities(self, patient_id: str) -> set[str | None]:
        return {p.modality for p in self.problems if p.patient_id in (patient_id, "*")}

    def usable(self, patient_id: str, needs: Iterable[str] = ()) -> bool:
        """Whether a patient has no problem touching itself, its labels, or any modality in ``needs``."""
        return not (self.bad_modalities(patient_id) & (WHOLE_PATIENT | layout.expand(needs)))

    @property
    def usable_ids(self) -> list[str]:
        return [pid for pid in self.cohort.patient_ids if self.usable(pid)]

    @property
    def ok(self) -> bool:
        """A cohort is usable when at least one patient is."""
        return bool(self.usable_ids)


def validate(cohort: Cohort, progress: bool = False, modalities: Iterable[str] | None = None) -> ValidationReport:
    """Open the files of every case and collect problems (the cohort's own reading problems included).

    Args:
        modalities: only open these (``mri`` = the four sequences); ``None`` opens everything.
    """
    report = ValidationReport(cohort, list(cohort.problems))
    for case in _progress(cohort, progress):
        report.problems.extend(check_case(case, modalities))
    log.info("validated %s: %d usable of %d", cohort.root, len(report.usable_ids), len(cohort))
    return report


def _progress(cohort: Cohort, progress: bool):
    if not progress:
        return iter(cohort)
    from rich.progress import track

    return track(list(cohort), description="validating", transient=True)


def check_case(case: Case, modalities: Iterable[str] | None = None) -> list[Problem]:
    """Every problem of one case's image and histology files (only ``modalities`` when given)."""
    wanted = layout.expand(modalities) if modalities is not None else set(layout.MODALITIES)
    problems: list[Problem] = []
    grids: dict[str, Grid] = {}
    for modality, path in case.images.items():
        if modality not in wanted:
            continue
        try:
            grids[modality] = _check_image(modality, path)
        except ImageError as err:
            problems.append(Problem(case.patient_id, path.name, str(err).removeprefix(f"{path.name}: "), modality))
    problems.extend(_check_grids(case, grids))
    for path in case.histology if "histology" in wanted else []:
        message = _check_histology(path)
        if message:
            problems.append(Problem(case.patient_id, f"histology/{path.name}", message, "histology"))
    return problems


def _check_image(modality: str, path: Path) -> Grid:
    img = load_nifti(path, ndim=4 if modality == "dsc" else 3)
    if modality == "dsc" and img.shape[3] < 10:
        raise ImageError(f"{path.name}: a DSC series needs tens of time points, found {img.shape[3]}; "
                         "check that the time axis is last")
    if modality != "seg":
        data = read_array(img, path)
        if modality in layout.MRI_SEQUENCES and not np.any(data):
            raise ImageError(f"{path.name}: the image is all zeros; export it again")
        return grid_of(img)
    seg = read_array(img, path)
    if not np.all(seg == np.round(seg)):
        raise ImageError(f"{path.name}: a segmentation must hold integer labels, found fractional values "
                         "(a probability map?); threshold it to a binary mask or BraTS labels")
    values = label_values(seg)
    if values <= {0}:
        raise ImageError(f"{path.name}: the tumour mask is empty; segment the tumour or remove the file")
    if not values <= BRATS_LABELS:
        raise ImageError(f"{path.name}: label values {sorted(values - BRATS_LABELS)} are neither binary "
                         "(0/1) nor BraTS (1 core, 2 oedema, 3 or 4 enhancing); relabel the mask")
    return grid_of(img)


def _check_grids(case: Case, grids: dict[str, Grid]) -> list[Problem]:
    """Structural images and the mask must share one grid; DSC and FA must cover the same space."""
    shared = [m for m in (*layout.MRI_SEQUENCES, "seg") if m in grids]
    if not shared:
        return []
    ref = shared[0]
    problems = []
    for modality in shared[1:]:
        if not grids[modality].same_as(grids[ref]):
            problems.append(Problem(
                case.patient_id, case.images[modality].name,
                f"not on the grid of {case.images[ref].name} (shape {grids[modality].shape} vs "
                f"{grids[ref].shape}, or affines differ by more than 1e-3 mm); resample it onto that image",
                modality))
    for modality in ("dsc", "fa"):
        if modality in grids and not _overlaps(grids[modality], grids[ref]):
            problems.append(Problem(
                case.patient_id, case.images[modality].name,
                f"covers a different part of space than {case.images[ref].name}; "
                "register it to the structural images", modality))
    return problems


def _overlaps(a: Grid, b: Grid, min_fraction: float = 0.5) -> bool:
    """Whether the world bounding boxes of two grids overlap by at least ``min_fraction`` of ``b``'s."""
    lo = np.maximum(a.world_bounds()[0], b.world_bounds()[0])
    hi = np.minimum(a.world_bounds()[1], b.world_bounds()[1])
    inter = np.prod(np.clip(hi - lo, 0, None))
    return inter >= min_fraction * np.prod(np.diff(b.world_bounds(), axis=0))


def _check_histology(path: Path) -> str | None:
    """``None`` if the image opens and has pixels, else the reason (header read only; slides are never loaded)."""
    try:
        if path.suffix.lower() in (".tif", ".tiff", ".svs", ".ndpi", ".scn", ".bif"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.verify()
                shape = im.size
    except Exception as err:
        return f"not a readable image ({type(err).__name__}: {err}); export the tile or slide again"
    if min(shape[:2]) < 16:
        return f"image is only {shape} pixels; tiles must be at least 16 x 16"
    return None
