"""Settings shared by the source assets: live switches, keys, revision windows, HTTP sessions."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from gwm_assets.resources.paths import project_root

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
    fred_requests_per_minute: float | None = Field(
        default_factory=lambda: float(os.environ["FRED_REQUESTS_PER_MINUTE"])
        if os.environ.get("FRED_REQUESTS_PER_MINUTE") else None,
        description="pacing of FRED requests (unset: 110 a minute, under the API's 120 per key); 0: unpaced, for a "
                    "mirror or a local stand-in without a limit")
    fred_revision_days: int = Field(default=90, description="days before the watermark that FRED re-fetches")
    yahoo_revision_days: int = Field(default=5, description="days before the watermark that Yahoo re-fetches")
    pmi_revision_days: int = Field(default=62, description="days before the watermark that PMI re-fetches")
    tabular_dir: str = Field(default_factory=lambda: os.environ.get("GWM_TABULAR", str(project_root() / "tabular")),
                             description="folder of tabular mapping files (*.yaml)")
    sec_user_agent: str = Field(default_factory=lambda: os.environ.get("SEC_USER_AGENT", USER_AGENT))
    plain_requests: bool = Field(default=False, description="give yfinance a plain requests.Session (tests)")
    corpus_limit: int = Field(default_factory=lambda: int(os.environ.get("GWM_CORPUS_LIMIT", "0") or 0),
                              description="embed only each text corpus's first N posts by date (0: all of them); "
                                          "for a quick first run on a slow machine")

    def offline_reason(self, source: str) -> str | None:
        """Why ``source`` does not fetch over the network under these settings (naming the setting that turns it
        on), or None when it is live: FRED with ``FRED_API_KEY``; the others with ``GWM_LIVE=1``, EDGAR also with
        a non-empty SEC user agent; tabular files are read whenever they exist. The one place this is decided:
        the source assets, their schedules and sensors and the freshness checks all ask here."""
        if source == "fred":
            return None if self.fred_api_key else "FRED_API_KEY is not set"
        if source == "tabular":
            return None
        if not self.live:
            return "GWM_LIVE=1 is not set"
        if source == "earnings" and not self.sec_user_agent.strip():
            return "SEC_USER_AGENT is empty (the SEC refuses requests without a contact)"
        return None

    def session(self):
        import requests

        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        return session

    def yahoo_session(self):
        """None lets yfinance use its own browser-like client; tests ask for a plain session."""
        return self.session() if self.plain_requests else None
