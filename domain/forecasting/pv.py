"""PV power from the clear-sky irradiance at the site, optionally reduced by cloud cover.

Chain (pvlib): solar position (NREL SPA) at the middle of each step -> clear-sky global
horizontal irradiance by Ineichen and Perez (2002), "A new airmass independent formulation for
the Linke turbidity coefficient", Solar Energy 73(3), with pvlib's monthly Linke turbidity
climatology and the site's altitude from pvlib's altitude map -> cloud reduction of Kasten and
Czeplak (1980), "Solar and terrestrial radiation dependent on the amount and type of cloud",
Solar Energy 24(2): ``GHI = GHI_clear * (1 - 0.75 * (N/8) ** 3.4)`` with N/8 the cloud cover
fraction -> split into direct and diffuse by Erbs, Klein and Duffie (1982) -> plane-of-array
irradiance on the tilted plane by the Hay-Davies model -> ``power = capacity_kw * POA / 1000
W/m2 * performance_ratio``, capped at the capacity. (pvlib reads its bundled turbidity and
altitude tables; nothing else is read.)

Quantiles: with a cloud-cover series, P50 at the given cover, P10 at cover + 25 percentage
points (two oktas), P90 at cover - 25 points. Without one, P50 = P90 = clear sky (the upper
envelope; the point forecast of an uninformed clear-sky model) and P10 = fully overcast.
Missing cloud-cover values count as clear.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pvlib

from domain.forecasting.types import Forecast, as_utc

CLOUD_SPREAD = 0.25


def kasten_czeplak(ghi_clear: np.ndarray, cloud_fraction: np.ndarray) -> np.ndarray:
    """GHI under a cloud cover fraction (0 = clear, 1 = overcast; Kasten and Czeplak 1980)."""
    c = np.clip(np.asarray(cloud_fraction, dtype=np.float64), 0.0, 1.0)
    return np.asarray(ghi_clear) * (1.0 - 0.75 * c ** 3.4)


def _cloud_fraction(cloud_cover_pct: pd.Series | None, times: pd.DatetimeIndex) -> np.ndarray:
    if cloud_cover_pct is None:
        return np.zeros(len(times))
    s = pd.to_numeric(cloud_cover_pct, errors="coerce").dropna()
    if not isinstance(s.index, pd.DatetimeIndex) or s.index.tz is None:
        raise ValueError("cloud_cover_pct must be indexed by tz-aware timestamps")
    if s.empty:
        return np.zeros(len(times))
    s = s.groupby(level=0).mean().sort_index()
    src = s.index.tz_convert("UTC").as_unit("ns").asi8.astype(np.float64)
    dst = times.as_unit("ns").asi8.astype(np.float64)
    frac = np.interp(dst, src, s.to_numpy(dtype=np.float64) / 100.0)  # holds the ends
    return np.asarray(np.clip(frac, 0.0, 1.0))


def clear_sky_pv(*, latitude: float, longitude: float, capacity_kw: float, origin: datetime,
                 horizon_s: int = 86400, step_s: int = 900, tilt_deg: float = 30.0,
                 azimuth_deg: float = 180.0, cloud_cover_pct: pd.Series | None = None,
                 performance_ratio: float = 0.85, altitude_m: float | None = None) -> Forecast:
    """PV power (kW) of a `capacity_kw` kWp array over ``[origin, origin + horizon)``.

    `azimuth_deg`: 180 = facing south; `cloud_cover_pct`: 0..100 indexed by tz-aware
    timestamps, interpolated to the steps (see the module docstring)."""
    if capacity_kw < 0:
        raise ValueError("capacity_kw must be >= 0")
    if step_s <= 0 or horizon_s < step_s:
        raise ValueError("need 0 < step_s <= horizon_s")
    origin_ts = as_utc(origin)
    step = pd.Timedelta(seconds=step_s)
    index = pd.date_range(origin_ts, periods=horizon_s // step_s, freq=step)
    mid = index + step / 2
    loc = pvlib.location.Location(latitude, longitude, tz="UTC", altitude=altitude_m)
    sun = loc.get_solarposition(mid)
    ghi_clear = loc.get_clearsky(mid, model="ineichen", solar_position=sun)["ghi"].to_numpy()
    cloud = _cloud_fraction(cloud_cover_pct, mid)
    if cloud_cover_pct is None:
        covers = (np.ones(len(index)), cloud, cloud)
    else:
        covers = (cloud + CLOUD_SPREAD, cloud, cloud - CLOUD_SPREAD)
    dni_extra = pvlib.irradiance.get_extra_radiation(mid).to_numpy()
    zenith = sun["apparent_zenith"].to_numpy()
    p10, p50, p90 = (
        _power(kasten_czeplak(ghi_clear, c), zenith, sun["azimuth"].to_numpy(), dni_extra, mid,
               tilt_deg, azimuth_deg) * capacity_kw * performance_ratio / 1000.0
        for c in covers)
    cap = capacity_kw
    return Forecast(quantity="pv", model="clear_sky", unit="kW", index=index,
                    p10=np.clip(p10, 0.0, cap), p50=np.clip(p50, 0.0, cap),
                    p90=np.clip(p90, 0.0, cap), training_start=None, training_end=None)


def _power(ghi: np.ndarray, zenith: np.ndarray, azimuth: np.ndarray, dni_extra: np.ndarray,
           times: pd.DatetimeIndex, tilt_deg: float, azimuth_deg: float) -> np.ndarray:
    """Plane-of-array irradiance (W/m2) from GHI: Erbs decomposition, Hay-Davies transposition."""
    split = pvlib.irradiance.erbs(ghi, zenith, times)
    poa = pvlib.irradiance.get_total_irradiance(
        surface_tilt=tilt_deg, surface_azimuth=azimuth_deg, solar_zenith=zenith,
        solar_azimuth=azimuth, dni=np.asarray(split["dni"]), ghi=ghi,
        dhi=np.asarray(split["dhi"]), dni_extra=dni_extra, model="haydavies")
    out = np.nan_to_num(np.asarray(poa["poa_global"], dtype=np.float64), nan=0.0)
    out[zenith >= 90.0] = 0.0
    return np.maximum(out, 0.0)
