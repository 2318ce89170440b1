"""Pictures of forecasts: each field's recent history, the model's forecast with its 90% band and the naive
forecast beside it (the asset's metadata and ``gwm predict --plot``)."""

from __future__ import annotations

import pandas as pd

from gwm_assets.training.plots import figure_png, panel_grid


def forecast_png(title: str, history: pd.DataFrame, forecast: pd.DataFrame, units: dict[str, str] | None = None,
                 columns: int = 2) -> bytes:
    """One panel per field of ``forecast`` (columns of ``WorldModel.forecast`` from one origin):
    ``history`` (``field_path, date, value``) as a line, the forecast mean and its q05..q95 band, and
    the naive forecast dashed."""
    fields = list(dict.fromkeys(forecast["field_path"])) or list(dict.fromkeys(history["field_path"]))
    fig, panels = panel_grid(fields, "nothing to forecast", height=2.6, columns=columns)
    for ax, path in panels:
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
    return figure_png(fig)
