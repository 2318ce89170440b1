"""Which fields exchange information: dense within a group, parent <-> child through coarse fields.

A *group* is one node of the tree inside a projection: its coarse field, its own leaf fields and
the coarse fields of its child subtrees. Every pair inside a group is connected (both ways, self
included). A child's coarse field belongs to both the parent's group and its own, so traffic
between levels passes through it. The projection's top-level fields (its include roots) form one
more group. Everything is built with array operations: no Python loop over connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gwm_model.canvas.layout import CanvasLayout
from gwm_model.schema.projection import Projection


def _pairs_within_groups(members: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ordered (a, b) with a and b sharing a group, from membership rows (member, group)."""
    order = np.lexsort((members, groups))
    members, groups = members[order], groups[order]
    _, starts, counts = np.unique(groups, return_index=True, return_counts=True)
    group_slot = np.searchsorted(groups[starts], groups)  # which group each membership row is in
    reps = counts[group_slot]  # each member pairs with every member of its group
    total = int(reps.sum())
    src = np.repeat(members, reps)
    run_start = np.repeat(np.cumsum(reps) - reps, reps)
    offset = np.arange(total) - run_start
    dst = members[np.repeat(starts[group_slot], reps) + offset]
    return src, dst


@dataclass(frozen=True)
class Connectivity:
    """Field-level edges as a sparse (COO) structure: ``src`` attends to ``dst`` (query -> key)."""

    paths: tuple[str, ...]
    src: np.ndarray
    dst: np.ndarray

    @property
    def n_fields(self) -> int:
        return len(self.paths)

    @classmethod
    def from_projection(cls, projection: Projection) -> Connectivity:
        paths = projection.paths
        index = projection.index_of
        n = len(paths)
        parents = [p.rsplit(".", 1)[0] if "." in p else "" for p in paths]
        # group ids: 0 = the projection's top level, i + 1 = the subtree whose coarse field is i
        owner = np.fromiter((index[p] + 1 if p in index else 0 for p in parents), dtype=np.int64, count=n)
        coarse = np.fromiter((f.kind == "coarse" for f in projection.fields), dtype=bool, count=n)
        own = np.flatnonzero(coarse)
        members = np.concatenate([np.arange(n, dtype=np.int64), own])
        groups = np.concatenate([owner, own + 1])
        src, dst = _pairs_within_groups(members, groups)
        keys = np.unique(src * n + dst)
        return cls(paths=paths, src=(keys // n).astype(np.int32), dst=(keys % n).astype(np.int32))

    @property
    def num_edges(self) -> int:
        return int(self.src.size)

    @cached_property
    def adjacency(self) -> np.ndarray:
        """Dense boolean (n_fields, n_fields) view of the edges."""
        adj = np.zeros((self.n_fields, self.n_fields), dtype=bool)
        adj[self.src, self.dst] = True
        return adj

    def _fields_on(self, layout: CanvasLayout) -> np.ndarray:
        if layout.paths != self.paths:
            raise ValueError("the layout was packed for a different projection than this connectivity")
        return layout.position_field

    def position_mask(self, layout: CanvasLayout) -> np.ndarray:
        """Boolean (H*W, H*W) attention mask over canvas positions (one time step).

        Position p may attend to q when their fields are connected. Empty positions attend only
        to themselves, so a masked softmax never sees an all-masked row.
        """
        field = self._fields_on(layout)
        used = field >= 0
        mask = np.zeros((field.size, field.size), dtype=bool)
        idx = np.flatnonzero(used)
        mask[np.ix_(idx, idx)] = self.adjacency[np.ix_(field[idx], field[idx])]
        empty = np.flatnonzero(~used)
        mask[empty, empty] = True
        return mask

    def position_edges(self, layout: CanvasLayout) -> tuple[np.ndarray, np.ndarray]:
        """COO position pairs (query position, key position) between occupied positions."""
        field = self._fields_on(layout)
        idx = np.flatnonzero(field >= 0)
        q, k = np.nonzero(self.adjacency[np.ix_(field[idx], field[idx])])
        return idx[q], idx[k]
