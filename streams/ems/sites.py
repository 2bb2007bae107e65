"""Edge I/O of the EMS processors: read ``ems.yaml`` and the sites' load profiles.

The domain gets data, never paths: this module turns the configuration file into
`domain.dispatch.SiteConfig` objects and a profile file into a load history series.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import pandas as pd
import yaml

from domain.dispatch import SiteConfig, load_ems_config

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
PROFILE_YEAR = 2016
"""The load profile's year used for every calendar date (the shipped household profile covers
2016 completely, including 29 February)."""


def read_sites(path: Path) -> list[SiteConfig]:
    """Sites of ``ems.yaml`` (multi-site or the predecessor's single-site format).

    Raises:
        OSError: the file cannot be read.
        domain.dispatch.EmsConfigError: the content is invalid (the message names the key).
    """
    return load_ems_config(yaml.safe_load(path.read_text()) or {})


@cache
def _profile(name: str) -> pd.DataFrame:
    path = Path(name) if Path(name).is_absolute() else DATA_DIR / name
    frame = pd.read_csv(path)
    frame.index = pd.to_datetime(frame.pop("timestamp_utc"), utc=True, format="ISO8601")
    return frame


def profile_history(site: SiteConfig, column: str, origin: datetime, days: int) -> pd.Series:
    """The site's profile column (kW, scaled by `site.load_scale`) for the `days` days before
    `origin`, mapped onto those dates from the profile year (hourly, hour-beginning, UTC).
    Empty when the site has no profile."""
    if not site.load_profile:
        return pd.Series(dtype=float)
    frame = _profile(site.load_profile)
    end = pd.Timestamp(origin).ceil("h")
    index = pd.date_range(end - timedelta(days=days), end, freq="h", inclusive="left")
    source = pd.DatetimeIndex([_in_profile_year(t) for t in index])
    values = frame[column].reindex(source).to_numpy() * site.load_scale
    return pd.Series(values, index=index, name=column).interpolate(limit_direction="both")


def _in_profile_year(t: pd.Timestamp) -> pd.Timestamp:
    return t.replace(year=PROFILE_YEAR)  # a leap year: every calendar date exists


def weather_cover(site: SiteConfig, origin: datetime, horizon_s: int) -> pd.Series | None:
    """Cloud cover (%) of the site's weather file over the horizon (and an hour either side,
    for interpolation), or None when the site has no weather file or the file has no value
    there (the PV forecast is then clear sky)."""
    if not site.weather_file:
        return None
    frame = _profile(site.weather_file)
    if "cloud_cover_pct" not in frame:
        raise ValueError(f"{site.weather_file}: no cloud_cover_pct column")
    lo, hi = origin - timedelta(hours=1), origin + timedelta(seconds=horizon_s, hours=1)
    cover = frame["cloud_cover_pct"].dropna()
    cover = cover[(cover.index >= lo) & (cover.index <= hi)]
    return cover if not cover.empty else None
