"""Pictures of forecasts: each field's recent history, the model's forecast with its 90% band and the naive
forecast beside it (the asset's metadata and ``gwm predict --plot``)."""

from __future__ import annotations

import io

import pandas as pd


def forecast_png(title: str, history: pd.DataFrame, forecast: pd.DataFrame, units: dict[str, str] | None = None,
                 columns: int = 2) -> bytes:
    """One panel per field of ``forecast`` (columns of ``WorldModel.forecast`` from one origin):
    ``history`` (``field_path, date, value``) as a line, the forecast mean and its q05..q95 band, and
    the naive forecast dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = list(dict.fromkeys(forecast["field_path"])) or list(dict.fromkeys(history["field_path"]))
    n = max(1, len(fields))
    columns = min(columns, n)
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    if not fields:
        axes[0, 0].text(0.5, 0.5, "nothing to forecast", ha="center", va="center", transform=axes[0, 0].transAxes)
    for ax, path in zip(axes.flat, fields, strict=False):
        seen = history[history["field_path"] == path]
        ahead = forecast[forecast["field_path"] == path].sort_values("target_ts")
        ax.plot(pd.to_datetime(seen["date"]), seen["value"], lw=1, color="black", label="observed")
        if len(ahead):
            when = pd.to_datetime(ahead["target_ts"])
            ax.fill_between(when, ahead["q05"], ahead["q95"], color="tab:blue", alpha=0.25, label="90% band")
            ax.plot(when, ahead["mean"], "o-", ms=3, color="tab:blue", label="model")
            method = ahead["naive_method"].iloc[0]
            ax.plot(when, ahead["naive"], "s--", ms=3, color="tab:orange", label=f"naive ({method})")
        unit = (units or {}).get(path, "")
        ax.set_title(path + (f" [{unit}]" if unit else ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()
