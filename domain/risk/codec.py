"""Serialised forms of `RiskState`: a whole-state dict, and the incremental changelog.

**Whole state** (`state_to_dict` / `state_from_dict`): a JSON-safe dict (Decimals as strings,
datetimes ISO 8601 with offset, order ids strings); `state_from_dict(state_to_dict(s)) == s`.
Format 1 (deliveries as a list of fills) is still read; its fills are summed per period.

**Changelog** (`changelog` / `restore`): what the risk processor writes to its compacted
changelog topic. One record per piece of state, so that a batch writes only what changed:

========================================  ================================================
key                                       value (JSON; None = tombstone, the piece is gone)
========================================  ================================================
``<site>|head``                           ``{"v": 2, "soc": .., "soc_time": .., "temp": ..,
                                          "temp_time": .., "site_kill": .., "global_kill":
                                          .., "pos": {market: MWh}}``: scalars and positions
``<site>|order|<order id>``               ``[market, side, qty, remaining, start, end,
                                          previous qty or null]``: one open order
``<site>|deliv|<side>|<start>|<end>``     ``"MWh"``: filled, undelivered energy of a period
``<site>|rate|<market>|<second>``         ``[microseconds]``: the times of the market's rate
                                          window in one whole UTC second (ISO 8601); only
                                          seconds whose times changed are written, and a
                                          second that left the window is tombstoned
========================================  ================================================

``|`` and ``%`` in site and market names are %-escaped. A closed order, a delivered period
and an empty rate window are tombstoned. The running totals of the open orders are not
written: `restore` recomputes them from the orders (`RiskState.__post_init__`).

Keys in the old whole-state format (a bare site id, value ``{"format": 1, ...}``, written
before the changelog became incremental) and unknown keys are rejected with
`ChangelogFormatError`: the risk changelog topic (``bess-risk-state``) must then be deleted
and rebuilt (reset the ``bess-risk`` consumer group to replay the inputs, or start empty).
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from domain.risk.state import KillSwitch, OpenOrder, Period, RiskState
from schemas.trading import Side

FORMAT = 2
"""Of `state_to_dict`; 1 is still read."""
HEAD = 2
"""Version of the ``head`` changelog record."""


class ChangelogFormatError(ValueError):
    """A changelog record this version cannot read; the message names the key and the fix."""


# --- whole state ---------------------------------------------------------------------------

def state_to_dict(s: RiskState) -> dict[str, object]:
    return {
        "format": FORMAT,
        "site": s.site,
        "soc_pct": _dec(s.soc_pct),
        "soc_time": _time(s.soc_time),
        "temperature_c": _dec(s.temperature_c),
        "temperature_time": _time(s.temperature_time),
        "open_orders": {str(k): _order_dict(o) for k, o in s.open_orders.items()},
        "deliveries": [{"side": p.side.value, "quantity_mwh": str(q),
                        "delivery_start": p.delivery_start.isoformat(),
                        "delivery_end": p.delivery_end.isoformat()}
                       for p, q in s.deliveries.items()],
        "positions_mwh": {m: str(q) for m, q in s.positions_mwh.items()},
        "recent_orders": {m: [t.isoformat() for t in ts] for m, ts in s.recent_orders.items()},
        "site_kill": _switch(s.site_kill),
        "global_kill": _switch(s.global_kill),
    }


def state_from_dict(data: Mapping[str, Any]) -> RiskState:
    if data.get("format") not in (1, FORMAT):
        raise ValueError(f"unsupported risk state format {data.get('format')!r}")
    deliveries: dict[Period, Decimal] = {}
    for d in data["deliveries"]:  # format 1: one entry per fill; 2: per period
        p = Period(Side(d["side"]), datetime.fromisoformat(d["delivery_start"]),
                   datetime.fromisoformat(d["delivery_end"]))
        deliveries[p] = deliveries.get(p, Decimal(0)) + Decimal(d["quantity_mwh"])
    return RiskState(
        site=data["site"],
        soc_pct=_opt_dec(data["soc_pct"]),
        soc_time=_opt_time(data["soc_time"]),
        temperature_c=_opt_dec(data["temperature_c"]),
        temperature_time=_opt_time(data["temperature_time"]),
        open_orders={uuid.UUID(k): OpenOrder(
            market=o["market"], side=Side(o["side"]), quantity_mwh=Decimal(o["quantity_mwh"]),
            remaining_mwh=Decimal(o["remaining_mwh"]),
            delivery_start=datetime.fromisoformat(o["delivery_start"]),
            delivery_end=datetime.fromisoformat(o["delivery_end"]),
            previous_quantity_mwh=_opt_dec(o["previous_quantity_mwh"]),
        ) for k, o in data["open_orders"].items()},
        deliveries=deliveries,
        positions_mwh={m: Decimal(q) for m, q in data["positions_mwh"].items()},
        recent_orders={m: tuple(datetime.fromisoformat(t) for t in ts)
                       for m, ts in data["recent_orders"].items()},
        site_kill=_opt_switch(data["site_kill"]),
        global_kill=_opt_switch(data["global_kill"]),
    )


# --- changelog -----------------------------------------------------------------------------

def changelog(before: RiskState | None, after: RiskState) -> dict[str, object | None]:
    """The changelog records that turn `before` (what the changelog holds for the site; None:
    nothing) into `after`: key -> JSON-safe value, None = tombstone.

    Cheap when little changed: unchanged pieces are skipped by identity (the domain keeps
    unchanged orders, deliveries and windows as the same objects), so the cost is the size of
    the change plus one pass over the open-order ids when an order changed."""
    site = _esc(after.site)
    out: dict[str, object | None] = {}
    if before is None or _head_changed(before, after):
        out[f"{site}|head"] = _head(after)
    b_orders: Mapping[uuid.UUID, OpenOrder] = {} if before is None else before.open_orders
    a_orders = after.open_orders
    if a_orders is not b_orders:
        added = 0
        for order_id, order in a_orders.items():
            old = b_orders.get(order_id)
            if old is not order:
                out[f"{site}|order|{order_id}"] = _order_record(order)
                added += old is None
        if len(b_orders) + added > len(a_orders):  # some were closed
            for order_id in b_orders.keys() - a_orders.keys():
                out[f"{site}|order|{order_id}"] = None
    b_deliv: Mapping[Period, Decimal] = {} if before is None else before.deliveries
    a_deliv = after.deliveries
    if a_deliv is not b_deliv:
        for p, q in a_deliv.items():
            if b_deliv.get(p) != q:
                out[_deliv_key(site, p)] = str(q)
        for p in b_deliv.keys() - a_deliv.keys():
            out[_deliv_key(site, p)] = None
    b_rate: Mapping[str, tuple[datetime, ...]] = {} if before is None else before.recent_orders
    a_rate = after.recent_orders
    if a_rate is not b_rate:
        for market in a_rate.keys() | b_rate.keys():
            b_times, a_times = b_rate.get(market, ()), a_rate.get(market, ())
            if a_times is b_times:
                continue
            prefix = f"{site}|rate|{_esc(market)}|"
            for bucket in _buckets(_changed(b_times, a_times)):
                i = bisect_left(a_times, bucket)
                j = bisect_left(a_times, bucket + _SECOND, i)
                out[prefix + bucket.isoformat()] = [t.microsecond for t in a_times[i:j]] \
                    if j > i else None
    return out


_SECOND = timedelta(seconds=1)


def _changed(before: tuple[datetime, ...], after: tuple[datetime, ...]) -> list[datetime]:
    """The times in one sorted window but not the other (as multisets), sorted by bucket
    only as far as `_buckets` needs. Usually: a pruned prefix and times appended."""
    p = bisect_left(before, after[0]) if after else len(before)
    kept = len(before) - p
    if after[:kept] == before[p:]:
        return [*before[:p], *after[kept:]]
    out: list[datetime] = []  # out-of-order event times: merge
    i = j = 0
    while i < len(before) and j < len(after):
        if before[i] == after[j]:
            i += 1
            j += 1
        elif before[i] < after[j]:
            out.append(before[i])
            i += 1
        else:
            out.append(after[j])
            j += 1
    return [*out, *before[i:], *after[j:]]


def _buckets(times: Iterable[datetime]) -> set[datetime]:
    """The whole UTC seconds the `times` fall in: a rate window is written per second."""
    return {t.astimezone(UTC).replace(microsecond=0) for t in times}


def snapshot(state: RiskState) -> dict[str, object]:
    """Every changelog record of `state` (as written for a site the changelog lacks)."""
    return {k: v for k, v in changelog(None, state).items() if v is not None}


def restore(records: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, RiskState]:
    """The site states held by the compacted changelog `records` (key -> decoded JSON value,
    tombstones already applied), by site.

    Raises `ChangelogFormatError` for a key in the old whole-state format or of unknown kind."""
    items = records.items() if isinstance(records, Mapping) else records
    heads: dict[str, dict[str, Any]] = {}
    orders: dict[str, dict[uuid.UUID, OpenOrder]] = {}
    deliveries: dict[str, dict[Period, Decimal]] = {}
    rates: dict[str, dict[str, list[datetime]]] = {}
    for key, value in items:
        parts = key.split("|")
        kind = parts[1] if len(parts) > 1 else None
        try:
            site = _unesc(parts[0])
            if kind == "head" and len(parts) == 2 and value.get("v") == HEAD:
                heads[site] = _head_from(value)
            elif kind == "order" and len(parts) == 3:
                orders.setdefault(site, {})[uuid.UUID(parts[2])] = _order_from(value)
            elif kind == "deliv" and len(parts) == 5:
                p = Period(Side(parts[2]), datetime.fromisoformat(parts[3]),
                           datetime.fromisoformat(parts[4]))
                deliveries.setdefault(site, {})[p] = Decimal(value)
            elif kind == "rate" and len(parts) == 4:
                bucket = datetime.fromisoformat(parts[3])
                rates.setdefault(site, {}).setdefault(_unesc(parts[2]), []).extend(
                    bucket.replace(microsecond=us) for us in value)
            else:
                raise ChangelogFormatError(_unknown(key, value))
        except ChangelogFormatError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise ChangelogFormatError(f"risk changelog record {key!r} is malformed: "
                                       f"{exc}") from exc
    states: dict[str, RiskState] = {}
    for site in heads.keys() | orders.keys() | deliveries.keys() | rates.keys():
        head = heads.get(site)
        if head is None:
            raise ChangelogFormatError(f"risk changelog: records of site {site!r} but no "
                                       f"{_esc(site)}|head record")
        states[site] = RiskState(site=site, open_orders=orders.get(site, {}),
                                 deliveries=deliveries.get(site, {}),
                                 recent_orders={m: tuple(sorted(ts)) for m, ts
                                                in rates.get(site, {}).items()},
                                 **head)
    return states


def _unknown(key: str, value: Any) -> str:
    if "|" not in key and isinstance(value, Mapping) and "format" in value:
        return (f"risk changelog record {key!r} is a whole-site state of format "
                f"{value['format']!r}, written before the changelog became incremental "
                f"(records per order, delivery period and rate window). It is not migrated: "
                f"delete the changelog topic bess-risk-state and rebuild the state (reset the "
                f"bess-risk consumer group to replay its inputs) before starting this version")
    return f"risk changelog record {key!r} is of unknown kind or version"


def _head_changed(before: RiskState, after: RiskState) -> bool:
    return (before.positions_mwh is not after.positions_mwh
            or before.soc_time != after.soc_time or before.soc_pct != after.soc_pct
            or before.temperature_time != after.temperature_time
            or before.temperature_c != after.temperature_c
            or before.site_kill != after.site_kill or before.global_kill != after.global_kill)


def _head(s: RiskState) -> dict[str, object]:
    return {"v": HEAD, "soc": _dec(s.soc_pct), "soc_time": _time(s.soc_time),
            "temp": _dec(s.temperature_c), "temp_time": _time(s.temperature_time),
            "site_kill": _switch(s.site_kill), "global_kill": _switch(s.global_kill),
            "pos": {m: str(q) for m, q in s.positions_mwh.items()}}


def _head_from(v: Mapping[str, Any]) -> dict[str, Any]:
    return {"soc_pct": _opt_dec(v["soc"]), "soc_time": _opt_time(v["soc_time"]),
            "temperature_c": _opt_dec(v["temp"]), "temperature_time": _opt_time(v["temp_time"]),
            "site_kill": _opt_switch(v["site_kill"]),
            "global_kill": _opt_switch(v["global_kill"]),
            "positions_mwh": {m: Decimal(q) for m, q in v["pos"].items()}}


def _order_record(o: OpenOrder) -> list[object]:
    return [o.market, o.side.value, str(o.quantity_mwh), str(o.remaining_mwh),
            o.delivery_start.isoformat(), o.delivery_end.isoformat(),
            _dec(o.previous_quantity_mwh)]


def _order_from(v: list[Any]) -> OpenOrder:
    market, side, qty, remaining, start, end, previous = v
    return OpenOrder(market, Side(side), Decimal(qty), Decimal(remaining),
                     datetime.fromisoformat(start), datetime.fromisoformat(end),
                     _opt_dec(previous))


def _deliv_key(site: str, p: Period) -> str:
    return f"{site}|deliv|{p.side.value}|{p.delivery_start.isoformat()}|" \
           f"{p.delivery_end.isoformat()}"


def _esc(name: str) -> str:
    if "|" in name or "%" in name:
        return name.replace("%", "%25").replace("|", "%7C")
    return name


def _unesc(name: str) -> str:
    if "%" in name:
        return name.replace("%7C", "|").replace("%25", "%")
    return name


def _order_dict(o: OpenOrder) -> dict[str, object]:
    return {"market": o.market, "side": o.side.value, "quantity_mwh": str(o.quantity_mwh),
            "remaining_mwh": str(o.remaining_mwh),
            "delivery_start": o.delivery_start.isoformat(),
            "delivery_end": o.delivery_end.isoformat(),
            "previous_quantity_mwh": _dec(o.previous_quantity_mwh)}


def _switch(k: KillSwitch | None) -> dict[str, str] | None:
    return None if k is None else {"engaged_at": k.engaged_at.isoformat(), "reason": k.reason}


def _opt_switch(raw: Mapping[str, str] | None) -> KillSwitch | None:
    if raw is None:
        return None
    return KillSwitch(datetime.fromisoformat(raw["engaged_at"]), raw["reason"])


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _opt_dec(raw: str | None) -> Decimal | None:
    return None if raw is None else Decimal(raw)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _opt_time(raw: str | None) -> datetime | None:
    return None if raw is None else datetime.fromisoformat(raw)
