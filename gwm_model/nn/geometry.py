"""Which canvas positions become tokens, what each token reads and writes, and who may attend to whom.

A model works on the *active* fields of a canvas: the fields that have data plus the coarse fields of
their ancestors (the hubs through which subtrees exchange information, see
:mod:`gwm_model.canvas.connectivity`). A node of 1,107 fields of which 30 hold data then costs tokens
for those 30 and their ~20 hubs, not for 1,000 empty regions. Each active field contributes one
token per canvas position of its footprint (``h*w``) and time step; a token reads ``C`` value
channels (a scalar is broadcast to every position, a vector is spread over its positions, see
:class:`gwm_model.canvas.positions.SlotPositions`).

The plan is pure geometry (numpy); models turn it into buffers. It is rebuilt from the canvas
layout, slot counts and the list of active paths, which is what a checkpoint stores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from types import SimpleNamespace

import numpy as np

from gwm_model.canvas.connectivity import Connectivity
from gwm_model.canvas.layout import CanvasLayout
from gwm_model.canvas.positions import slot_offsets


def hub_mask(paths: Sequence[str]) -> np.ndarray:
    """``(F,)`` bool: the field is a coarse (summary) field, i.e. another path lies below it."""
    prefixes = {p.rsplit(".", i)[0] for p in paths for i in range(1, p.count(".") + 1)}
    return np.array([p in prefixes for p in paths], dtype=bool)


def connectivity_of_paths(paths: Sequence[str]) -> Connectivity:
    """The connectivity of a projection, recovered from its field paths alone.

    A path is a coarse (summary) field exactly when another path lies below it; that is all
    :meth:`Connectivity.from_projection` needs, so a canvas or checkpoint suffices.
    """
    paths = tuple(paths)
    hubs = hub_mask(paths)
    fields = tuple(SimpleNamespace(path=p, kind="coarse" if hub else "leaf") for p, hub in zip(paths, hubs.tolist(),
                                                                                               strict=True))
    projection = SimpleNamespace(paths=paths, index_of={p: i for i, p in enumerate(paths)}, fields=fields)
    return Connectivity.from_projection(projection)  # type: ignore[arg-type]


def active_paths(paths: Sequence[str], has_data: np.ndarray) -> tuple[str, ...]:
    """Fields with data plus every ancestor that is itself a field (their coarse hubs), in canvas order."""
    present = set(paths)
    keep = set()
    for path, seen in zip(paths, np.asarray(has_data, dtype=bool).tolist(), strict=True):
        if not seen:
            continue
        keep.add(path)
        parts = path.split(".")
        keep.update(a for a in (".".join(parts[:i]) for i in range(1, len(parts))) if a in present)
    return tuple(p for p in paths if p in keep)


@dataclass(frozen=True)
class TokenPlan:
    """Tokens of one canvas for a model.

    ``layout``/``slots``: the canvas's (all fields, ``S = sum(slots)`` value slots). ``fields``: the
    active paths (model fields, ``M`` of them). Arrays below index tokens ``P``, channels ``C``.
    """

    layout: CanvasLayout
    slots: tuple[int, ...]
    fields: tuple[str, ...]
    channels: int

    def __post_init__(self) -> None:
        unknown = sorted(set(self.fields) - set(self.layout.paths))
        if unknown:
            raise ValueError(f"active field(s) {unknown[:5]} are not on the canvas layout")
        if not self.fields:
            raise ValueError("a token plan needs at least one active field; the canvas has no data")
        need = max(1 if k == 1 else math.ceil(k / (self.layout.by_path[p].h * self.layout.by_path[p].w))
                   for p, k in zip(self.layout.paths, self.slots, strict=True) if p in set(self.fields))
        if need > self.channels:
            raise ValueError(f"a field needs {need} value channels per position but the model has {self.channels}. "
                             "Fix: raise value_channels in the model config")

    @classmethod
    def from_canvas(cls, canvas, channels: int, fields: Sequence[str] | None = None) -> TokenPlan:
        """Tokens for ``fields`` (default: fields with data and their hubs). A canvas with no data at all gets
        its hub fields (all fields when it has none): an untrained model of the node's structure."""
        if fields is not None:
            chosen = tuple(fields)
        elif canvas.presence.any():
            chosen = active_paths(canvas.paths, canvas.presence.any(axis=0))
        else:
            hubs = hub_mask(canvas.paths)
            chosen = tuple(p for p, hub in zip(canvas.paths, hubs.tolist(), strict=True) if hub or not hubs.any())
        return cls(canvas.layout, tuple(canvas.slots), chosen, channels)

    @property
    def num_slots(self) -> int:
        return int(sum(self.slots))

    @cached_property
    def canvas_field(self) -> np.ndarray:
        """``(M,)`` canvas field index of each model field."""
        index = {p: i for i, p in enumerate(self.layout.paths)}
        return np.array([index[p] for p in self.fields], dtype=np.int64)

    @cached_property
    def _tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        offsets = slot_offsets(self.slots)
        field_of, local_of, position_of, slot_rows = [], [], [], []
        for m, f in enumerate(self.canvas_field.tolist()):
            placement = self.layout.placements[f]
            positions = self.layout.positions(placement.path)
            k = self.slots[f]
            rows = np.full((positions.size, self.channels), self.num_slots, dtype=np.int64)
            if k == 1:
                rows[:, 0] = offsets[f]
            else:
                per = math.ceil(k / positions.size)
                local = np.arange(positions.size)[:, None] * per + np.arange(per)[None, :]
                rows[:, :per] = np.where(local < k, offsets[f] + local, self.num_slots)
            field_of.append(np.full(positions.size, m))
            local_of.append(np.arange(positions.size))
            position_of.append(positions)
            slot_rows.append(rows)
        return (np.concatenate(field_of), np.concatenate(local_of), np.concatenate(position_of),
                np.concatenate(slot_rows))

    @property
    def token_field(self) -> np.ndarray:
        """``(P,)`` model field index of each token."""
        return self._tokens[0]

    @property
    def token_local(self) -> np.ndarray:
        """``(P,)`` index of the token within its field's footprint."""
        return self._tokens[1]

    @property
    def token_position(self) -> np.ndarray:
        """``(P,)`` flat canvas position of each token."""
        return self._tokens[2]

    @property
    def token_slots(self) -> np.ndarray:
        """``(P, C)`` canvas value slot each token channel reads/writes; ``num_slots`` = nothing."""
        return self._tokens[3]

    @property
    def num_tokens(self) -> int:
        return int(self.token_field.size)

    @cached_property
    def spatial_mask(self) -> np.ndarray:
        """``(P, P)`` bool: token p may attend to token q.

        Connected fields (the layout's connectivity) plus a *hub mesh*: the coarse fields attend to each
        other. Without it, two leaves in distant subtrees (a CPI print and an equity index) are up to
        eight hops apart through the tree and a few layers never connect them; with it any two leaves
        are three hops apart (leaf -> its hub -> the other hub -> leaf), and leaves still see only
        their own neighbourhood.
        """
        paths = self.layout.paths
        adjacency = connectivity_of_paths(paths).adjacency.copy()
        hubs = hub_mask(paths)
        adjacency |= hubs[:, None] & hubs[None, :]
        fields = self.canvas_field[self.token_field]
        return adjacency[np.ix_(fields, fields)]

    @cached_property
    def slot_model_field(self) -> np.ndarray:
        """``(S,)`` model field index of each canvas slot, -1 for slots of inactive fields."""
        out = np.full(self.num_slots, -1, dtype=np.int64)
        offsets = slot_offsets(self.slots)
        for m, f in enumerate(self.canvas_field.tolist()):
            out[offsets[f]:offsets[f + 1]] = m
        return out

    def to_dict(self) -> dict[str, object]:
        return {"fields": list(self.fields), "channels": self.channels}
