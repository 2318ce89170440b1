"""Training objectives: masked prediction and diffusion, both scored only on cells the model cannot see.

A window sample (:class:`gwm_model.canvas.windows.CanvasWindows`) already hides what was not yet
published at its anchor. :func:`hide_cells` hides more of what *was* visible (random cells, whole
fields, contiguous spans, and the part of the window after the anchor), and the loss is taken on
the present cells that end up hidden:

    loss = sum((pred - target)^2 * hidden_and_present * loss_weight / slots) / sum(hidden_and_present * loss_weight)

(``slots`` spreads a vector field's weight over its slots so a 384-d embedding counts as one
field). Nothing the model sees is ever scored, so copying the input earns nothing.

Diffusion noises the same hidden cells on a cosine schedule, scaled per field by its update period
relative to the canvas step (a slow field gets less noise: its value is more predictable from its
own recent past), conditions the denoiser on the timestep, and samples predictive distributions
with a deterministic DDIM-style sampler started from independent noise draws.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass
class MaskingConfig:
    """Extra hiding on top of publication: share of visible cells (``cell_rate``), of fields hidden for a
    whole window (``field_rate``), chance per field of one hidden span of up to ``span_max`` steps
    (``span_rate``), and chance of hiding every step after the anchor (``future_rate``)."""

    cell_rate: float = 0.15
    field_rate: float = 0.15
    span_rate: float = 0.25
    span_max: int = 8
    future_rate: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def hides_only_the_unpublished(config: MaskingConfig) -> bool:
    """True when a draw hides no random cell, field or span: only steps after the anchor, which publication hides
    already (a value is published once its step is over), so the masked task is the forecasting task."""
    return config.cell_rate <= 0 and config.field_rate <= 0 and (config.span_rate <= 0 or config.span_max <= 0)


def hide_cells(visible: torch.Tensor, step_offset: torch.Tensor, config: MaskingConfig,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``visible`` ``(B, L, F)`` bool -> a subset of it with extra cells hidden (see :class:`MaskingConfig`)."""
    B, L, F = visible.shape
    device = visible.device

    def draw(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=device)

    keep = draw(B, L, F) >= config.cell_rate
    keep &= (draw(B, 1, F) >= config.field_rate)
    if config.span_rate > 0 and config.span_max > 0:
        starts = (draw(B, 1, F) * L).long()
        lengths = 1 + (draw(B, 1, F) * config.span_max).long()
        steps = torch.arange(L, device=device)[None, :, None]
        in_span = (steps >= starts) & (steps < starts + lengths) & (draw(B, 1, F) < config.span_rate)
        keep &= ~in_span
    future = (step_offset > 0)[None, :, None] & (draw(B, 1, 1) < config.future_rate)
    keep &= ~future
    return visible & keep


def slot_weights(loss_weight: torch.Tensor, slot_field: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """``(B, F)`` field weights -> ``(B, S)`` slot weights (a field's weight split over its slots)."""
    return loss_weight[:, slot_field] / slots[slot_field]


def masked_loss(pred: torch.Tensor, target: torch.Tensor, scored: torch.Tensor, loss_weight: torch.Tensor,
                slot_field: torch.Tensor, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted squared error on ``scored`` ``(B, L, F)`` cells: (mean loss, per-window loss ``(B,)``).

    Windows with nothing scored get loss 0 and do not count in the mean.
    """
    w_slot = slot_weights(loss_weight, slot_field, slots)[:, None, :]
    cell = scored[..., slot_field].to(pred.dtype) * w_slot
    err = (pred.float() - target.float()) ** 2 * cell
    norm = (scored.to(pred.dtype) * loss_weight[:, None, :]).sum(dim=(1, 2))
    per_window = err.sum(dim=(1, 2)) / norm.clamp(min=1e-8)
    return err.sum() / norm.sum().clamp(min=1e-8), per_window.detach()


# -- diffusion --------------------------------------------------------------------------------------
class CosineSchedule:
    """Continuous cosine schedule on t in [0, 1]:
    ``alpha_bar(t) = cos^2((t + s) / (1 + s) * pi / 2) / cos^2(s / (1 + s) * pi / 2)``."""

    def __init__(self, offset: float = 0.008, min_alpha_bar: float = 1e-4) -> None:
        self.offset, self.min_alpha_bar = offset, min_alpha_bar

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        s = self.offset
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
        return f.clamp(min=self.min_alpha_bar, max=1.0)


def period_noise_scale(period_days: torch.Tensor, step_days: float) -> torch.Tensor:
    """Per-field noise multiplier ``1 / (1 + ln(max(1, period / step)))``: 1 for fields that change every
    step, 0.40 for a monthly field on a weekly canvas, 0.28 for a quarterly one."""
    ratio = (period_days / max(step_days, 1e-9)).clamp(min=1.0)
    return 1.0 / (1.0 + torch.log(ratio))


def add_noise(x0: torch.Tensor, noised: torch.Tensor, t: torch.Tensor, slot_scale: torch.Tensor,
              schedule: CosineSchedule, slot_field: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Values with the ``noised`` ``(B, L, F)`` cells replaced by ``sqrt(ab) x0 + sqrt(1 - ab) scale eps``."""
    ab = schedule.alpha_bar(t)[:, None, None]
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    noisy = ab.sqrt() * x0 + (1 - ab).sqrt() * slot_scale * eps
    return torch.where(noised[..., slot_field], noisy, x0)


@torch.no_grad()
def ddim_sample(denoise, values: torch.Tensor, noised: torch.Tensor, slot_scale: torch.Tensor,
                schedule: CosineSchedule, slot_field: torch.Tensor, n_samples: int = 16, n_steps: int = 25,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Samples ``(n_samples, B, L, S)`` of the ``noised`` cells given the visible ones.

    ``denoise(values, t)`` returns the model's estimate of the clean values ``(B, L, S)``; ``values``
    holds the visible cells (others zero). Each sample starts from its own noise and follows the
    deterministic DDIM path, so the spread of the samples is the model's predictive uncertainty.
    """
    slot_mask = noised[..., slot_field]
    times = torch.linspace(1.0, 0.0, n_steps + 1, device=values.device)
    out = []
    for _ in range(n_samples):
        eps0 = torch.randn(values.shape, generator=generator, device=values.device, dtype=values.dtype)
        x = torch.where(slot_mask, slot_scale * eps0 * (1 - schedule.alpha_bar(times[:1])).sqrt(), values)
        for now, nxt in zip(times[:-1], times[1:], strict=True):
            t = now.expand(values.shape[0])
            x0 = denoise(x, t)
            ab_now, ab_next = schedule.alpha_bar(now), schedule.alpha_bar(nxt)
            eps = (x - ab_now.sqrt() * x0) / ((1 - ab_now).sqrt() * slot_scale).clamp(min=1e-6)
            stepped = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * slot_scale * eps
            x = torch.where(slot_mask, stepped, values)
        out.append(x)
    return torch.stack(out)
