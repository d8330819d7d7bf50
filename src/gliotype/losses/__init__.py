"""Loss functions of the methods."""

from gliotype.losses.collaborative import symmetric_kl
from gliotype.losses.contrastive import bilevel_contrastive, info_nce
from gliotype.losses.focus_consistency import focus_consistency
from gliotype.losses.lineage import lineage_infonce
from gliotype.losses.supcon import supervised_contrastive
from gliotype.losses.vq import vq_losses as vq_losses  # re-exported
from gliotype.losses.focal import focal_loss as focal_loss, multitask_loss as multitask_loss  # re-exported

__all__ = ["bilevel_contrastive", "info_nce", "symmetric_kl", "focus_consistency", "supervised_contrastive",
           "lineage_infonce"]
