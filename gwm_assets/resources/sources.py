"""Settings shared by the source assets: live switches, keys, revision windows, HTTP sessions."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from gwm_assets.paths import project_root

USER_AGENT = "gwm world-model feature store (https://example.org/gwm; gwm@example.org)"


class SourceSettings(dg.ConfigurableResource):
    """Live fetching happens only when asked: FRED with a key, the others with ``GWM_LIVE=1``.

    Offline (the default), live source assets record a skip in ``refresh_log`` and the warehouse
    holds the embedded history only.
    """

    live: bool = Field(default_factory=lambda: os.environ.get("GWM_LIVE", "") == "1",
                       description="fetch Yahoo, PMI, EDGAR and news over the network")
    fred_api_key: str = Field(default_factory=lambda: os.environ.get("FRED_API_KEY", ""),
                              description="FRED API key (https://fred.stlouisfed.org/docs/api/api_key.html)")
    fred_api_url: str = Field(default_factory=lambda: os.environ.get("FRED_API_URL", "https://api.stlouisfed.org/fred"),
                              description="root of the FRED API (a mirror or proxy may stand in)")
    fred_revision_days: int = Field(default=90, description="days before the watermark that FRED re-fetches")
    yahoo_revision_days: int = Field(default=5, description="days before the watermark that Yahoo re-fetches")
    pmi_revision_days: int = Field(default=62, description="days before the watermark that PMI re-fetches")
    tabular_dir: str = Field(default_factory=lambda: os.environ.get("GWM_TABULAR", str(project_root() / "tabular")),
                             description="folder of tabular mapping files (*.yaml)")
    sec_user_agent: str = Field(default_factory=lambda: os.environ.get("SEC_USER_AGENT", USER_AGENT))
    plain_requests: bool = Field(default=False, description="give yfinance a plain requests.Session (tests)")

    def session(self):
        import requests

        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        return session

    def yahoo_session(self):
        """None lets yfinance use its own browser-like client; tests ask for a plain session."""
        return self.session() if self.plain_requests else None
