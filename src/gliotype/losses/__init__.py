"""Loss functions of the methods."""

from gliotype.losses.collaborative import symmetric_kl
from gliotype.losses.contrastive import bilevel_contrastive, info_nce

__all__ = ["bilevel_contrastive", "info_nce", "symmetric_kl"]
