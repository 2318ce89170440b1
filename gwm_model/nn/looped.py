"""The ``looped`` backbone: a stack of factorised space/time transformer blocks applied several times.

Tokens are ``(B, L, P, d)``: ``L`` steps of a window, ``P`` canvas positions per step. Each block
attends in space (the positions of one step, restricted by the layout's connectivity: a boolean
``(P, P)`` mask handed to :func:`torch.nn.functional.scaled_dot_product_attention`, so no Python
loop over connections), then in time (every step of one position), then applies an MLP. All
sub-layers are pre-norm residual branches with a learned per-channel branch scale.

``n_layers`` blocks are applied ``n_loops`` times with shared weights. Per-loop parameters are
zero-initialised: a loop embedding added to every token before the pass and a per-(loop, block)
gain ``g`` that scales each branch by ``1 + g``. At initialisation every pass is therefore the
same function (plain weight sharing); training lets later passes specialise.

Branch scales start at one. :meth:`LoopedBackbone.zero_branches` sets chosen blocks' scales to zero
so that those blocks are the identity: a deeper model grown from a shallower one then starts as
exactly the shallower model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x`` ``(N, n, d)``; ``mask`` ``(n, n)`` bool (True = may attend) or None."""
        N, n, d = x.shape
        q, k, v = self.qkv(x).view(N, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(N, n, d))


class SpaceTimeBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, ff_mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_space, self.norm_time, self.norm_ff = (nn.LayerNorm(d_model) for _ in range(3))
        self.space = _Attention(d_model, n_heads, dropout)
        self.time = _Attention(d_model, n_heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_mult * d_model), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_mult * d_model, d_model))
        self.branch_scale = nn.Parameter(torch.ones(3, d_model))

    def forward(self, h: torch.Tensor, spatial_mask: torch.Tensor | None, gain: torch.Tensor) -> torch.Tensor:
        B, L, P, d = h.shape
        scale = self.branch_scale * (1.0 + gain)
        space = self.space(self.norm_space(h).reshape(B * L, P, d), spatial_mask).view(B, L, P, d)
        h = h + scale[0] * space
        timed = self.norm_time(h).transpose(1, 2).reshape(B * P, L, d)
        h = h + scale[1] * self.time(timed, None).view(B, P, L, d).transpose(1, 2)
        return h + scale[2] * self.ff(self.norm_ff(h))


class LoopedBackbone(nn.Module):
    """``n_layers`` :class:`SpaceTimeBlock` applied ``n_loops`` times (see the module docstring)."""

    def __init__(self, d_model: int, n_heads: int = 4, n_layers: int = 2, n_loops: int = 2, ff_mult: int = 4,
                 dropout: float = 0.0, gradient_checkpointing: bool = False) -> None:
        super().__init__()
        if n_layers < 1 or n_loops < 1:
            raise ValueError(f"the looped backbone needs n_layers >= 1 and n_loops >= 1, got {n_layers}, {n_loops}")
        self.d_model, self.n_layers, self.n_loops = d_model, n_layers, n_loops
        self.blocks = nn.ModuleList(SpaceTimeBlock(d_model, n_heads, ff_mult, dropout) for _ in range(n_layers))
        self.loop_embedding = nn.Parameter(torch.zeros(n_loops, d_model))
        self.loop_gain = nn.Parameter(torch.zeros(n_loops, n_layers))
        self.cond_proj = nn.Linear(d_model, d_model)
        nn.init.zeros_(self.cond_proj.weight)
        nn.init.zeros_(self.cond_proj.bias)
        self.final_norm = nn.LayerNorm(d_model)
        self.gradient_checkpointing = gradient_checkpointing

    def zero_branches(self, blocks: range | list[int]) -> None:
        """Make the given blocks identity maps (their branch scales zero); see the module docstring."""
        with torch.no_grad():
            for i in blocks:
                self.blocks[i].branch_scale.zero_()

    def forward(self, tokens: torch.Tensor, spatial_mask: torch.Tensor | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        h = tokens
        shift = self.cond_proj(cond)[:, None, None, :] if cond is not None else 0.0
        for loop in range(self.n_loops):
            h = h + self.loop_embedding[loop] + shift
            for i, block in enumerate(self.blocks):
                gain = self.loop_gain[loop, i]
                if self.gradient_checkpointing and self.training:
                    h = torch.utils.checkpoint.checkpoint(block, h, spatial_mask, gain, use_reentrant=False)
                else:
                    h = block(h, spatial_mask, gain)
        return self.final_norm(h)
