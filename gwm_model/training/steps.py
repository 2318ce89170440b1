"""One objective evaluation on a batch: what the model sees, what it predicts, what is scored.

Shared by training, validation, evaluation and inference so the four can never disagree about
masking. ``Objective`` holds what depends on the model and canvas only (which fields the model
has tokens for, per-slot noise scales, and in change space each slot's change scale, see
:mod:`gwm_model.training.change_scale`).
"""

from __future__ import annotations

import torch

from gwm_model.training.change_scale import slot_scales
from gwm_model.training.objectives import (
    CosineSchedule,
    MaskingConfig,
    add_noise,
    ddim_sample,
    hide_cells,
    masked_loss,
    period_noise_scale,
)

STEP_DAYS = {"daily": 1.0, "business": 7 / 5, "weekly": 7.0, "monthly": 365.25 / 12, "quarterly": 365.25 / 4}


class Objective:
    def __init__(self, model, batches, kind: str, masking: MaskingConfig, target_space: str = "level",
                 change_scale: dict[str, float] | None = None) -> None:
        if kind not in ("masked", "diffusion"):
            raise ValueError(f"unknown objective '{kind}'")
        self.model, self.batches, self.kind, self.masking = model, batches, kind, masking
        canvas = batches.canvas
        device = batches.device
        self.target_space = target_space
        scale = slot_scales(canvas, target_space, change_scale)
        # recorded in the checkpoint (None in level space, where every scale is 1)
        self.change_scale = None if target_space == "level" else {
            p: float(scale[o]) for p, o in zip(canvas.paths, canvas.offsets[:-1], strict=True)}
        self.slot_change = torch.from_numpy(scale).to(device)
        F = len(canvas.slots)
        model_fields = torch.zeros(F, dtype=torch.bool)
        model_fields[torch.as_tensor(model.plan.canvas_field)] = True
        self.model_fields = model_fields.to(device)
        self.schedule = CosineSchedule()
        period = torch.ones(F)
        period_days = torch.expm1(model.field_log_period.detach().float().cpu())
        period[torch.as_tensor(model.plan.canvas_field)] = period_days
        field_scale = period_noise_scale(period, STEP_DAYS[canvas.axis.frequency])
        field_scale[~model_fields.cpu()] = 1.0
        self.slot_scale = field_scale[torch.from_numpy(canvas.slot_field)].to(device) * self.slot_change

    def scored(self, batch: dict[str, torch.Tensor], visible: torch.Tensor) -> torch.Tensor:
        return batch["present"] & ~visible & self.model_fields & (batch["loss_weight"] > 0)[:, None, :]

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None,
             extra_hiding: bool = True) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(mean loss, per-window loss ``(B,)``, scored cell count) for one batch."""
        loss, per_window, scored = self._scored_loss(batch, generator, extra_hiding)
        return loss, per_window, int(scored.sum())

    def weighted_loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean loss, per-window loss ``(B,)``, the mean's denominator: the loss weight of the scored cells). A DDP
        rank weights its share of a global batch by it, so the ranks' mean is the whole batch's loss exactly."""
        loss, per_window, scored = self._scored_loss(batch, generator, True)
        return loss, per_window, (scored.float() * batch["loss_weight"][:, None, :].float()).sum()

    def _scored_loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None,
                     extra_hiding: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        offsets = self.batches.step_offset
        visible = hide_cells(batch["visible"], offsets, self.masking, generator) if extra_hiding else batch["visible"]
        scored = self.scored(batch, visible)
        slot_field = self.batches.slot_field
        inputs = batch["targets"] * visible[..., slot_field]
        if self.kind == "masked":
            pred = self.model(inputs, visible, offsets, batch["day_of_year"], correction_scale=self.slot_change,
                              base=batch.get("base"))
        else:
            B = inputs.shape[0]
            t = torch.rand(B, generator=generator, device=inputs.device)
            noisy = add_noise(batch["targets"], scored, t, self.slot_scale, self.schedule, slot_field, generator)
            values = torch.where(scored[..., slot_field], noisy, inputs)
            pred = self.model(values, visible, offsets, batch["day_of_year"], noised=scored, timestep=t,
                              correction_scale=self.slot_change, base=batch.get("base"))
        loss, per_window = masked_loss(pred / self.slot_change, batch["targets"] / self.slot_change, scored,
                                       batch["loss_weight"], slot_field, self.batches.slots)
        return loss, per_window, scored

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor], visible: torch.Tensor, wanted: torch.Tensor,
                samples: int = 16, steps: int = 25, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Point prediction ``(B, L, S)`` of the ``wanted`` ``(B, L, F)`` cells given ``visible`` ones, and for
        diffusion the samples ``(n, B, L, S)`` (None for the masked objective)."""
        slot_field = self.batches.slot_field
        inputs = batch["targets"] * visible[..., slot_field]
        offsets, doy = self.batches.step_offset, batch["day_of_year"]
        if self.kind == "masked":
            return self.model(inputs, visible, offsets, doy, correction_scale=self.slot_change,
                              base=batch.get("base")), None

        def denoise(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.model(values, visible, offsets, doy, noised=wanted, timestep=t,
                              correction_scale=self.slot_change, base=batch.get("base"))

        draws = ddim_sample(denoise, inputs, wanted & self.model_fields, self.slot_scale, self.schedule, slot_field,
                            n_samples=samples, n_steps=steps, generator=generator)
        return draws.mean(dim=0), draws
