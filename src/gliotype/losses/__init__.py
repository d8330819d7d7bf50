"""Loss functions of the methods."""

from gliotype.losses.collaborative import symmetric_kl

__all__ = ["symmetric_kl"]
