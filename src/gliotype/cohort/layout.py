"""File names of a cohort on disk (DESIGN.md Contract 1): which file in a patient folder is which modality.

BraTS 2023 names (``<pid>-t1n.nii.gz`` ...) and BraTS 2021 names (``<pid>_t1.nii.gz`` ...) are both
read, as ``.nii.gz`` or ``.nii``.
"""

from __future__ import annotations

import re
from pathlib import Path

MRI_SEQUENCES = ("t1n", "t1c", "t2w", "t2f")
"""The four structural sequences, in channel order: T1, T1 contrast, T2, FLAIR."""

IMAGE_MODALITIES = (*MRI_SEQUENCES, "seg", "dsc", "fa")
MODALITIES = (*IMAGE_MODALITIES, "histology", "rnaseq")
"""Every modality a case may have. ``mri`` in a method's requirements means all of MRI_SEQUENCES."""

def expand(modalities) -> set[str]:
    """Modality names with ``mri`` expanded into the four structural sequences."""
    names = set(modalities)
    return (names - {"mri"}) | set(MRI_SEQUENCES) if "mri" in names else names


SUFFIX_ALIASES: dict[str, tuple[str, ...]] = {
    "t1n": ("t1n", "t1"),
    "t1c": ("t1c", "t1ce", "t1gd"),
    "t2w": ("t2w", "t2"),
    "t2f": ("t2f", "flair"),
    "seg": ("seg", "mask", "tumor", "tumour"),
    "dsc": ("dsc", "perf", "perfusion"),
    "fa": ("fa",),
}

HISTOLOGY_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".bif")
_NIFTI = re.compile(r"^(?P<stem>.+?)(?P<ext>\.nii\.gz|\.nii)$", re.IGNORECASE)


def modality_of(path: Path, patient_id: str) -> str | None:
    """The modality a file name denotes for ``patient_id``, or ``None`` if it names none.

    >>> modality_of(Path("P1-t1c.nii.gz"), "P1"), modality_of(Path("P1_flair.nii"), "P1")
    ('t1c', 't2f')
    """
    match = _NIFTI.match(path.name)
    if not match:
        return None
    stem = match["stem"]
    if not stem.lower().startswith(patient_id.lower()):
        return None
    suffix = stem[len(patient_id):].lstrip("-_.").lower()
    for modality, aliases in SUFFIX_ALIASES.items():
        if suffix in aliases:
            return modality
    return None


def find_images(folder: Path, patient_id: str) -> tuple[dict[str, Path], list[str]]:
    """Map each modality to its file in a patient folder.

    Returns:
        ``{modality: path}`` and a list of messages for files that claim the same modality twice.
    """
    found: dict[str, Path] = {}
    clashes: list[str] = []
    for path in sorted(folder.iterdir()):
        modality = modality_of(path, patient_id)
        if modality is None:
            continue
        if modality in found:
            clashes.append(
                f"both {found[modality].name} and {path.name} name the {modality} image; keep one"
            )
            continue
        found[modality] = path
    return found, clashes


def find_histology(folder: Path) -> list[Path]:
    """Histology files (ROI tiles or slides) in ``folder/histology``, sorted; empty when absent."""
    hist = folder / "histology"
    if not hist.is_dir():
        return []
    return sorted(p for p in hist.iterdir() if p.is_file() and p.suffix.lower() in HISTOLOGY_SUFFIXES)


def find_table(root: Path, stem: str) -> Path | None:
    """A cohort-level table such as ``rnaseq.tsv`` or ``ppi.csv[.gz]``, or ``None``."""
    for name in (f"{stem}.tsv", f"{stem}.tsv.gz", f"{stem}.csv", f"{stem}.csv.gz", f"{stem}.txt"):
        if (root / name).is_file():
            return root / name
    return None
