"""Pictures of training for Dagster metadata: the loss curve of a node (or the trunk), and its one-step-ahead
forecasts against the actuals of the test period beside the naive and AR forecasts."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """``fig`` laid out and encoded as PNG (90 dpi), then closed."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    _pyplot().close(fig)
    return buffer.getvalue()


def panel_grid(titles: Sequence[str], empty: str, height: float = 2.5, columns: int = 2):
    """A figure with one panel per title (``columns`` across, spare panels hidden) and the axes paired with
    their titles; with no titles, one panel saying ``empty``."""
    n = max(1, len(titles))
    columns = min(columns, n)
    rows = (n + columns - 1) // columns
    fig, axes = _pyplot().subplots(rows, columns, figsize=(5.2 * columns, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    if not titles:
        axes[0, 0].text(0.5, 0.5, empty, ha="center", va="center", transform=axes[0, 0].transAxes)
    return fig, list(zip(axes.flat, titles, strict=False))


def loss_curve_png(title: str, steps: Sequence[dict], epochs: Sequence[dict] = (), validations: Sequence[dict] = (),
                   best_step: int | None = None, measure: str = "masked") -> bytes:
    """Training loss per logged step and validation loss at the steps it was measured: ``validations`` (every one,
    the starting weights' at step 0 included) or else each epoch's; ``best_step`` marks the weights kept;
    ``measure`` names what validation measured (``forecast`` or ``masked``)."""
    fig, ax = _pyplot().subplots(figsize=(7, 3.2))
    if steps:
        ax.plot([s["step"] for s in steps], [s["loss"] for s in steps], lw=1, label="training loss (masked)")
    source = validations or epochs
    val = [(e["step"], e["val_loss"]) for e in source if e.get("val_loss") is not None and "step" in e]
    if val:
        ax.plot(*zip(*val, strict=True), "o-", ms=3, label=f"validation loss ({measure} task)")
        kept = [v for step, v in val if step == best_step]
        if kept:
            ax.plot([best_step], kept[:1], "*", ms=11, color="tab:red", label=f"kept: step {best_step}")
    if not steps and not val:
        ax.text(0.5, 0.5, "not trained (no data on the canvas)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    if steps or val:
        ax.legend(fontsize=7)
    return figure_png(fig)


def forecast_vs_actual_png(title: str, trace: dict[str, dict[str, list]]) -> bytes:
    """One panel per field of ``trace`` (the evaluation's one-step-ahead test forecasts)."""
    import numpy as np

    fig, panels = panel_grid(list(trace), "no scored test cells")
    styles = {"actual": ("black", "-", "actual"), "model": ("tab:blue", "-", "model"),
              "naive": ("tab:orange", "--", "naive"), "ar": ("tab:green", ":", "AR")}
    for ax, path in panels:
        series = trace[path]
        dates = np.array(series["date"], dtype="datetime64[D]")
        for name, (color, line, label) in styles.items():
            if name in series:
                values = np.array([np.nan if v is None else v for v in series[name]], dtype=float)
                ok = np.isfinite(values)
                ax.plot(dates[ok], values[ok], line, color=color, lw=1, label=label)
        ax.set_title(path, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return figure_png(fig)


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
