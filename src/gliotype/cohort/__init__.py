"""The cohort data model: cases, labels, tumour regions, validation, splits and the synthetic cohort."""

from gliotype.cohort.case import Case, Cohort, Problem
from gliotype.cohort.labels import TARGETS, read_labels
from gliotype.cohort.regions import REGIONS, region_mask
from gliotype.cohort.validate import ValidationReport, validate

__all__ = ["Case", "Cohort", "Problem", "TARGETS", "read_labels", "REGIONS", "region_mask",
           "ValidationReport", "validate"]
