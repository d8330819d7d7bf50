"""The cross-attention encoder of paper 003's multimodal model: RNA token states attend to patch tokens.

ALBEF's fusion encoder (its BERT layers 6-12: self-attention, cross-attention to the image, MLP) with the
RNA sequence in the place of the text. The RNA states ``[CLS, token_1 .. token_T]`` (queries) and the
patch states ``[CLS, sub-patch_1 .. sub-patch_P]`` (keys and values) are projected to the joint width
``dim``; each of ``depth`` pre-norm layers computes::

    x = x + SelfAttn(LN(x))
    x = x + CrossAttn(LN(x), LN(memory))
    x = x + MLP(LN(x))            # GELU, hidden mlp_ratio * dim

and a final ``LayerNorm`` closes. Output position 0 (the RNA CLS) is the joint representation read by the
matching head; positions ``1 .. T`` are the joint states of the gene tokens, read by the RNA decoder.

The author code's ``Coattention`` is a single bidirectional layer (RNA attends to the image and the image
to the RNA, no self-attention, no MLP) whose two CLS states are concatenated for the matching head; we
follow ALBEF's one-directional stack as METHODS.md describes ("RNA token states as queries").
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["CrossAttentionLayer", "JointEncoder"]


class CrossAttentionLayer(nn.Module):
    """One pre-norm layer: self-attention, cross-attention to ``memory``, MLP.

    Shapes:
        x: (B, Tq, dim), memory: (B, Tm, dim) -> (B, Tq, dim)
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm_self = nn.LayerNorm(dim, eps=1e-6)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_query = nn.LayerNorm(dim, eps=1e-6)
        self.norm_memory = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: Tensor, memory: Tensor) -> Tensor:
        h = self.norm_self(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        m = self.norm_memory(memory)
        x = x + self.cross_attn(self.norm_query(x), m, m, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))


class JointEncoder(nn.Module):
    """RNA-queries-attend-to-patch encoder (module docstring).

    Args:
        query_dim: width of the RNA states (``RNAEncoderConfig.dim``).
        memory_dim: width of the patch states (``PatchEncoderConfig.embed``).
        dim, depth, heads, mlp_ratio, dropout: the joint layers.

    Shapes:
        queries: (B, T + 1, query_dim) RNA [CLS, tokens]; memory: (B, P + 1, memory_dim) patch [CLS, tokens]
        -> (B, T + 1, dim); position 0 is the joint CLS
    """

    def __init__(self, query_dim: int, memory_dim: int, dim: int = 128, depth: int = 2, heads: int = 4,
                 mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"JointEncoder: dim ({dim}) must be a multiple of heads ({heads}); e.g. dim=128, heads=4")
        self.query_in = nn.Linear(query_dim, dim)
        self.memory_in = nn.Linear(memory_dim, dim)
        self.layers = nn.ModuleList(CrossAttentionLayer(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        if queries.shape[0] != memory.shape[0]:
            raise ValueError(f"JointEncoder: queries and memory must pair row by row; got batches "
                             f"{queries.shape[0]} and {memory.shape[0]}")
        x, m = self.query_in(queries), self.memory_in(memory)
        for layer in self.layers:
            x = layer(x, m)
        return self.norm(x)
