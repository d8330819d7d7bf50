"""RNA-seq encoding (paper 003): genes grouped into tokens by PPI communities or chromosomes."""

from gliotype.rna.tokens import (REMAINDER, GeneTokens, TokenConfig, build_tokens, chromosome_tokens,
                                 merge_smallest, ppi_tokens, read_gene_chromosomes)

__all__ = ["REMAINDER", "GeneTokens", "TokenConfig", "build_tokens", "chromosome_tokens", "merge_smallest",
           "ppi_tokens", "read_gene_chromosomes"]
