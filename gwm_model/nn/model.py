"""``WorldModelNet``: field encoder -> backbone -> field decoder, over the active tokens of a canvas.

The network predicts, for every value slot of a window, its value; objectives decide which cells it
sees (visible), which carry noise (diffusion) and which are scored. The prediction is a departure
from a base forecast: each cell starts at its field's latest visible value in the window (carried
forward, with its age fed to the encoder) or, at and after the anchor when a base is given, at the
field's own AR forecast from its whole published history; the decoder adds the learned correction, so
a series whose best forecast is its last value (or its autoregression) costs the model nothing to get
right and every parameter is spent on what the base misses. It holds its geometry (the
:class:`TokenPlan`) and its fields' text embeddings as buffers, so a checkpoint of it is complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from gwm_model.nn.fields import HIDDEN, NOISED, VISIBLE, FieldDecoder, FieldEncoder, sinusoid
from gwm_model.nn.geometry import TokenPlan
from gwm_model.nn.looped import LoopedBackbone

BACKBONES = ("looped", "cogvideox")


def from_known_keys(cls, data: dict, what: str):
    """``cls(**data)`` for a dataclass, with a clear error naming unknown keys (typos in YAML or manifests)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {unknown}. Known: {sorted(known)}")
    return cls(**data)


@dataclass
class ModelConfig:
    """Architecture. ``backbone``: ``looped`` (trained from scratch) or ``cogvideox`` (a frozen pretrained
    diffusers transformer loaded from ``pretrained``, a hub id or local path, with ``pretrained_subfolder``).
    ``relative_inputs``: the encoder reads each scalar field's values relative to its latest visible value at the
    window's anchor (see :meth:`WorldModelNet.forward`), so the correction never depends on a level the training
    period did not reach; a checkpoint whose manifest predates the key was trained on levels (False)."""

    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    n_loops: int = 2
    ff_mult: int = 4
    dropout: float = 0.0
    value_channels: int = 12
    backbone: str = "looped"
    relative_inputs: bool = True
    pretrained: str | None = None
    pretrained_subfolder: str | None = None
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone '{self.backbone}'. Fix: use one of {BACKBONES}")
        if self.backbone == "cogvideox" and not self.pretrained:
            raise ValueError("the cogvideox backbone needs 'pretrained' (a model id such as THUDM/CogVideoX-2b "
                             "with pretrained_subfolder='transformer', or a local directory)")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        return from_known_keys(cls, data, "model config")

    @classmethod
    def from_manifest(cls, data: dict) -> ModelConfig:
        """The architecture a checkpoint was trained with (one written before ``relative_inputs`` read levels)."""
        return cls.from_dict({"relative_inputs": False, **data})


def build_backbone(config: ModelConfig) -> nn.Module:
    if config.backbone == "looped":
        return LoopedBackbone(config.d_model, config.n_heads, config.n_layers, config.n_loops, config.ff_mult,
                              config.dropout, config.gradient_checkpointing)
    from gwm_model.nn.cogvideox import CogVideoXBackbone

    return CogVideoXBackbone.from_pretrained(config.pretrained, d_model=config.d_model, n_loops=config.n_loops,
                                             subfolder=config.pretrained_subfolder,
                                             gradient_checkpointing=config.gradient_checkpointing)


def carry_forward(values: torch.Tensor, visible: torch.Tensor, slot_field: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each cell's field's latest visible value at or before its step within the window, and its age.

    ``values`` ``(B, L, S)``, ``visible`` ``(B, L, F)`` -> carried values ``(B, L, S)`` (0 where the field
    has shown nothing yet) and ``(B, L, F)`` steps since that value (``L`` where none).
    """
    B, L, _ = visible.shape
    steps = torch.arange(L, device=values.device)[None, :, None]
    last = torch.where(visible, steps, -1).cummax(dim=1).values                  # (B, L, F)
    seen = last >= 0
    carried = values.gather(1, last.clamp(min=0)[..., slot_field]) * seen[..., slot_field]
    age = torch.where(seen, steps - last, L)
    return carried, age


class WorldModelNet(nn.Module):
    """See the module docstring. ``field_text`` ``(M, 384)`` and ``field_period_days`` ``(M,)`` follow
    ``plan.fields``."""

    def __init__(self, config: ModelConfig, plan: TokenPlan, field_text: np.ndarray,
                 field_period_days: Sequence[float], backbone: nn.Module | None = None) -> None:
        super().__init__()
        M = len(plan.fields)
        field_text = np.asarray(field_text, dtype=np.float32)
        if field_text.shape[0] != M or len(field_period_days) != M:
            raise ValueError(f"{M} model fields but {field_text.shape[0]} text embeddings and "
                             f"{len(field_period_days)} periods")
        self.config, self.plan = config, plan
        self.encoder = FieldEncoder(config.d_model, config.value_channels, field_text.shape[1],
                                    level=config.relative_inputs)
        self.decoder = FieldDecoder(config.d_model, config.value_channels)
        self.backbone = backbone if backbone is not None else build_backbone(config)
        self.field_offset = nn.Parameter(torch.zeros(M, config.d_model))
        self.timestep = nn.Sequential(nn.Linear(config.d_model, config.d_model), nn.SiLU(),
                                      nn.Linear(config.d_model, config.d_model))
        for name, array in (("field_text", field_text),
                            ("field_log_period", np.log1p(np.asarray(field_period_days, dtype=np.float32))),
                            ("token_field", plan.token_field), ("token_local", plan.token_local),
                            ("token_slots", plan.token_slots), ("spatial_mask", plan.spatial_mask),
                            ("token_canvas_field", plan.canvas_field[plan.token_field]),
                            ("slot_field", np.repeat(np.arange(len(plan.slots)), plan.slots)),
                            ("relative_slot", np.repeat(np.asarray(plan.slots) == 1, plan.slots))):
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array)), persistent=False)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.plan.fields

    def forward(self, values: torch.Tensor, visible: torch.Tensor, step_offset: torch.Tensor,
                day_of_year: torch.Tensor, noised: torch.Tensor | None = None,
                timestep: torch.Tensor | None = None, correction_scale: torch.Tensor | None = None,
                base: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted slot values ``(B, L, S)``.

        ``values`` ``(B, L, S)``: visible cells hold their value, noised cells their noisy value,
        everything else must be zero. ``visible``/``noised`` ``(B, L, F)`` bool over canvas fields.
        ``timestep`` ``(B,)`` diffusion time in [0, 1] (None for the masked objective). ``correction_scale``
        ``(S,)`` multiplies the decoder's correction per slot (change space; None: 1). ``base`` ``(B, L, S)``: where a
        cell's prediction starts instead of the carried value (a field's AR forecast from its whole published
        history, see :class:`~gwm_model.training.autoregression.BaseForecast`); NaN keeps the carried value. The
        encoder reads the start value too, so the network sees the base forecast it corrects.
        """
        B, L, S = values.shape
        carried, age = carry_forward(values, visible, self.slot_field)
        reference = self._reference(carried, age, step_offset) if self.config.relative_inputs else None
        from_base = None if base is None else ~torch.isnan(base)
        if from_base is not None:
            carried = torch.where(from_base, base.to(carried.dtype), carried)
        if not torch.is_grad_enabled() and self.decoder.is_silent():
            return carried  # an untrained head corrects nothing: the backbone's pass would be multiplied by 0
        seen_values, seen_carried = values, carried
        if reference is not None:  # relative_inputs: what the encoder reads, not where the prediction starts
            started = (age < L)[..., self.slot_field]                             # (B, L, S): has a start value
            if from_base is not None:
                started = started | from_base
            shown = (visible if noised is None else visible | noised)[..., self.slot_field]
            seen_values = torch.where(shown, values - reference[:, None, :], values)
            seen_carried = torch.where(started, carried - reference[:, None, :], carried)
        padded = torch.cat([seen_values, values.new_zeros(B, L, 1)], dim=-1)
        cells = padded[..., self.token_slots]                                      # (B, L, P, C)
        carried_cells = torch.cat([seen_carried, carried.new_zeros(B, L, 1)], dim=-1)[..., self.token_slots]
        level = None
        if reference is not None:  # the anchor's level once more, bounded: where the field stands
            level = torch.tanh(torch.cat([reference, reference.new_zeros(B, 1)], dim=-1)[..., self.token_slots] / 2)
        token_age = age[..., self.token_canvas_field]                               # (B, L, P)
        state = torch.full(cells.shape[:3], HIDDEN, dtype=torch.long, device=values.device)
        state = torch.where(visible[..., self.token_canvas_field], VISIBLE, state)
        if noised is not None:
            state = torch.where(noised[..., self.token_canvas_field], NOISED, state)
        vectors = self.encoder.field_vectors(self.field_text, self.field_offset, self.field_log_period)
        tokens = self.encoder(cells, state, vectors, self.token_field, self.token_local, step_offset, day_of_year,
                              carried_cells, token_age, level)
        cond = None
        if timestep is not None:
            cond = self.timestep(sinusoid(timestep * 1000.0, self.config.d_model, 10000.0))
            tokens = tokens + cond[:, None, None, :]
        hidden = self.backbone(tokens, self.spatial_mask, cond)
        correction = self.decoder(hidden, self.token_slots, S)
        return carried + (correction if correction_scale is None else correction * correction_scale)

    def _reference(self, carried: torch.Tensor, age: torch.Tensor, step_offset: torch.Tensor) -> torch.Tensor:
        """``(B, S)``: each scalar field's latest value visible at or before the anchor (the last step with offset
        <= 0), 0 for a field with nothing visible by then and for the slots of vector fields (text embeddings)."""
        anchor = max(int((step_offset <= 0).sum()) - 1, 0)
        seen = (age[:, anchor, :] < age.shape[1])[:, self.slot_field] & self.relative_slot
        return torch.where(seen, carried[:, anchor, :], torch.zeros_like(carried[:, anchor, :]))

    def parameter_counts(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"total": total, "trainable": trainable}

    def trainable_fraction(self) -> float:
        counts = self.parameter_counts()
        return counts["trainable"] / max(counts["total"], 1)


def flops_per_window(config: ModelConfig, tokens: int, steps: int) -> float:
    """Approximate forward FLOPs of one window of ``steps`` x ``tokens`` for the looped backbone."""
    d, passes = config.d_model, config.n_layers * config.n_loops
    n = tokens * steps
    dense = 2 * n * d * d * (4 * 2 + 2 * config.ff_mult)  # qkv+out for two attentions, MLP
    attention = 2 * 2 * d * (steps * tokens * tokens + tokens * steps * steps)
    return float(passes * (dense + attention))
