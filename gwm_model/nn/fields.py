"""``FieldEncoder`` and ``FieldDecoder``: canvas cells to tokens at the fields' positions, and back.

Every token is the sum of
- its **value**: the ``C`` channels it reads (a scalar is broadcast over its field's positions, a
  vector spread over them), zero when the cell is hidden;
- its **state**: hidden, visible, or noised (diffusion), a learned vector each;
- the field's **latest visible value** so far in the window and how many steps old it is;
- with relative inputs (``ModelConfig.relative_inputs``), values and latest values are read relative to the
  field's level at the window's anchor, and that level enters once more, bounded (``tanh(level / 2)``, close
  to linear inside the range training saw): the model still knows where a field stands, but a level far
  outside the training range saturates instead of driving its correction without bound;
- its field's **identity**: the frozen MiniLM embedding of the field's description through a shared
  projection, plus a field-specific offset (zero-initialised, keyed by path in checkpoints);
- the field's **update period** (log days) and the token's index within the footprint;
- **time**: the step's offset from the anchor and the season of the step's date.
Shared weights make the encoder work for any set of fields, which is what lets nodes with different
fields share and average parameters.

The decoder maps each token to ``C`` channels and averages tokens back into value slots, so the
model's output lives in the canvas's slot space, like the targets.
"""

from __future__ import annotations

import math

import torch
from torch import nn

HIDDEN, VISIBLE, NOISED = 0, 1, 2


def sinusoid(x: torch.Tensor, dims: int, max_period: float = 1000.0) -> torch.Tensor:
    """``(...,)`` -> ``(..., dims)`` sine/cosine features at geometric frequencies."""
    half = dims // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = x.float()[..., None] * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class FieldEncoder(nn.Module):
    def __init__(self, d_model: int, channels: int, text_dim: int = 384, time_dims: int = 16,
                 level: bool = False) -> None:
        super().__init__()
        self.channels, self.time_dims = channels, time_dims
        self.value = nn.Linear(channels, d_model)
        self.carried = nn.Linear(channels + 1, d_model)
        self.level = nn.Linear(channels, d_model, bias=False) if level else None
        self.state = nn.Embedding(3, d_model)
        self.identity = nn.Linear(text_dim, d_model, bias=False)
        self.period = nn.Linear(2, d_model)
        self.local = nn.Linear(time_dims, d_model, bias=False)
        self.time = nn.Linear(time_dims + 2, d_model)
        self.norm = nn.LayerNorm(d_model)

    def field_vectors(self, text: torch.Tensor, offset: torch.Tensor, log_period: torch.Tensor) -> torch.Tensor:
        """``(M, d)`` identity + period vector of each model field."""
        period = torch.stack([log_period, torch.ones_like(log_period)], dim=-1)
        return self.identity(text) + offset + self.period(period)

    def forward(self, cells: torch.Tensor, state: torch.Tensor, fields: torch.Tensor, token_field: torch.Tensor,
                token_local: torch.Tensor, step_offset: torch.Tensor, day_of_year: torch.Tensor,
                carried: torch.Tensor, age: torch.Tensor, level: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``(B, L, P, d)``.

        ``cells`` ``(B, L, P, C)`` token channel values (already zero where hidden); ``state``
        ``(B, L, P)`` long; ``fields`` ``(M, d)`` from :meth:`field_vectors`; ``token_field``/
        ``token_local`` ``(P,)``; ``step_offset`` ``(L,)`` steps from the anchor; ``day_of_year``
        ``(B, L)`` in [0, 1); ``carried`` ``(B, L, P, C)`` the field's latest visible value so far in the
        window and ``age`` ``(B, L, P)`` the steps since it. ``level`` ``(B, P, C)``: the anchor's level of each token's
        field, bounded (``tanh(x / 2)``), when values and latest values are read relative to it.
        """
        season = torch.stack([torch.sin(2 * math.pi * day_of_year), torch.cos(2 * math.pi * day_of_year)], dim=-1)
        time = self.time(torch.cat([sinusoid(step_offset, self.time_dims, 256.0).expand(*season.shape[:2], -1),
                                    season], dim=-1))                          # (B, L, d)
        static = fields[token_field] + self.local(sinusoid(token_local, self.time_dims, 64.0))  # (P, d)
        staleness = torch.log1p(age.to(cells.dtype))[..., None]
        tokens = (self.value(cells) + self.carried(torch.cat([carried, staleness], dim=-1)) + self.state(state)
                  + static + time[:, :, None, :])
        if self.level is not None and level is not None:
            tokens = tokens + self.level(level)[:, None]
        return self.norm(tokens)


class FieldDecoder(nn.Module):
    def __init__(self, d_model: int, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, channels)
        nn.init.zeros_(self.head.weight)  # an untrained model predicts exactly its base forecast (see WorldModelNet)
        nn.init.zeros_(self.head.bias)

    def is_silent(self) -> bool:
        """True while the head is all zeros (an untrained model): every correction it writes is exactly 0."""
        return not (bool(self.head.weight.detach().any()) or bool(self.head.bias.detach().any()))

    def forward(self, tokens: torch.Tensor, token_slots: torch.Tensor, num_slots: int) -> torch.Tensor:
        """``(B, L, P, d)`` -> ``(B, L, S)`` slot values: the mean over the token channels that write a slot.

        ``token_slots`` ``(P, C)`` slot index per token channel, ``num_slots`` for channels that write
        nothing. Slots no token writes are zero.
        """
        out = self.head(self.norm(tokens))                       # (B, L, P, C)
        B, L = out.shape[:2]
        index = token_slots.reshape(-1)
        total = out.new_zeros(B, L, num_slots + 1).index_add_(2, index, out.reshape(B, L, -1))
        count = out.new_zeros(num_slots + 1).index_add_(0, index, out.new_ones(index.shape))
        return total[..., :num_slots] / count[:num_slots].clamp(min=1.0)
