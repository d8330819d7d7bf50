"""Per-patient derivations of each method's inputs, cached and fingerprinted (DESIGN.md Contract 3)."""

from gliotype.prepare import brain_voxels  # noqa: F401  (registers the stage)
from gliotype.prepare import histology_tiles  # noqa: F401  (registers the stage)
from gliotype.prepare import perfusion_input  # noqa: F401  (registers the stage)
from gliotype.prepare import stain_patches  # noqa: F401  (registers the stage)
from gliotype.prepare import tumour_geometry  # noqa: F401  (registers the stage)
from gliotype.prepare import tumour_image  # noqa: F401  (registers the stage)
from gliotype.prepare.stage import STAGES, StageResult, get_stage, load_prepared, register_stage, run_stage

__all__ = ["STAGES", "StageResult", "get_stage", "load_prepared", "register_stage", "run_stage"]
