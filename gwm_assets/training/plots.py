"""Pictures of training for Dagster metadata: the loss curve of a node (or the trunk)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence


def loss_curve_png(title: str, steps: Sequence[dict], epochs: Sequence[dict] = ()) -> bytes:
    """Training loss per logged step and validation loss per epoch (at the step it was measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    if steps:
        ax.plot([s["step"] for s in steps], [s["loss"] for s in steps], lw=1, label="training loss")
    val = [(e["step"], e["val_loss"]) for e in epochs if e.get("val_loss") is not None and "step" in e]
    if val:
        ax.plot(*zip(*val, strict=True), "o-", ms=3, label="validation loss")
    if not steps and not val:
        ax.text(0.5, 0.5, "not trained (no data on the canvas)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("masked loss")
    ax.set_title(title, fontsize=9)
    if steps or val:
        ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
