"""A checkpoint's do-no-harm gate applied to forecasts in the fields' own units.

At and after the origin each field's forecast becomes ``naive + a * (base - naive) + b * (network - base)``
(:func:`~gwm_model.evaluation.gate.apply_stacked_gate`, the weights the evaluation fitted on every validation and
test window's errors published by the end of the canvas, :mod:`gwm_model.evaluation.rolling_gate`: ``gate_base``
for ``a``, ``gate`` for ``b``). A checkpoint from before the base has one weight
(``a = b``, the correction taken over naive); one without a gate keeps the network's forecast; a field the gate was
not fitted for (too little history to score) gets the naive forecast (``a = b = 0``). Late releases inside the
context (values of past steps not yet published at the origin) get the same two weights from the evaluation's
``gate_context_base`` and ``gate_context``, over the AR nowcast of each such step from what was published (``base``
holds it there; the network itself reads no base before the anchor). A checkpoint evaluated before those had a
base takes ``gate_context`` over naive, and one evaluated before they were gated keeps the network's nowcast. Cells
with no naive value to fall back to are not gated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Z90 = 1.6448536269514722  # the 5% and 95% quantiles of a normal are mean -/+ Z90 std


def apply_checkpoint_gate(out: dict[str, np.ndarray], base: np.ndarray | None, naive: np.ndarray,
                          fields: Sequence[str], evaluation: Mapping, context: int, diffusion: bool) -> None:
    """Gate ``out`` (``mean``, ``std``, ``q05``, ``q95``, each ``(B, L, k)``) in place. ``base`` ``(B, L, k)`` the
    model's base forecast (NaN where none; None without a base), ``naive`` ``(B, k)``. The masked model's spread is
    the gated forecast's measured residual (kept); diffusion samples shrink with ``b``."""
    gate = evaluation.get("gate")
    if not gate:
        return
    gate_base = evaluation.get("gate_base") or gate
    b = np.array([float(gate.get(p, 0.0)) for p in fields])
    a = np.array([float(gate_base.get(p, 0.0)) for p in fields])
    known = np.isfinite(naive)[:, None, :]
    ones = np.ones_like(out["mean"])
    b_cells = np.where(known, b[None, None, :], 1.0) * ones  # no naive: nothing to fall back to
    a_cells = np.where(known, a[None, None, :], 1.0) * ones
    late, late_base = evaluation.get("gate_context"), evaluation.get("gate_context_base")
    c = np.array([float(late.get(p, 0.0)) for p in fields]) if late is not None else np.ones(len(fields))
    d = np.array([float(late_base.get(p, 0.0)) for p in fields]) if late_base is not None else np.zeros(len(fields))
    b_cells[:, :context - 1, :] = np.where(known, c[None, None, :], 1.0)  # late releases inside the context
    a_cells[:, :context - 1, :] = np.where(known, d[None, None, :], 1.0)
    fallback = np.where(known, naive[:, None, :], 0.0)
    start = fallback if base is None else np.where(np.isfinite(base), base, fallback)
    if base is None:
        a_cells = b_cells  # the correction is taken over naive
    elif late_base is None:  # evaluated before the late releases had a base: their correction is over naive
        start[:, :context - 1, :] = fallback[:, :context - 1, :]
    for key in ("mean", "q05", "q95") if diffusion else ("mean",):
        out[key] = fallback + a_cells * (start - fallback) + b_cells * (out[key] - start)
    if diffusion:
        out["std"] = out["std"] * b_cells
    else:
        out["q05"], out["q95"] = out["mean"] - Z90 * out["std"], out["mean"] + Z90 * out["std"]
