"""JSON-safe dicts of `RiskState` (the stream processor keeps it in a changelog table).

Decimals are strings, datetimes ISO 8601 with offset, order ids strings: `json.dumps` works on
the output, and `state_from_dict(state_to_dict(s)) == s`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.risk.state import Delivery, KillSwitch, OpenOrder, RiskState
from schemas.trading import Side

FORMAT = 1


def state_to_dict(s: RiskState) -> dict[str, object]:
    return {
        "format": FORMAT,
        "site": s.site,
        "soc_pct": _dec(s.soc_pct),
        "soc_time": _time(s.soc_time),
        "temperature_c": _dec(s.temperature_c),
        "temperature_time": _time(s.temperature_time),
        "open_orders": {str(k): _order(o) for k, o in s.open_orders.items()},
        "deliveries": [{"side": d.side.value, "quantity_mwh": str(d.quantity_mwh),
                        "delivery_start": d.delivery_start.isoformat(),
                        "delivery_end": d.delivery_end.isoformat()} for d in s.deliveries],
        "positions_mwh": {m: str(q) for m, q in s.positions_mwh.items()},
        "recent_orders": {m: [t.isoformat() for t in ts] for m, ts in s.recent_orders.items()},
        "site_kill": _switch(s.site_kill),
        "global_kill": _switch(s.global_kill),
    }


def state_from_dict(data: Mapping[str, Any]) -> RiskState:
    if data.get("format") != FORMAT:
        raise ValueError(f"unsupported risk state format {data.get('format')!r}")
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
        deliveries=tuple(Delivery(
            Side(d["side"]), Decimal(d["quantity_mwh"]),
            datetime.fromisoformat(d["delivery_start"]), datetime.fromisoformat(d["delivery_end"]),
        ) for d in data["deliveries"]),
        positions_mwh={m: Decimal(q) for m, q in data["positions_mwh"].items()},
        recent_orders={m: tuple(datetime.fromisoformat(t) for t in ts)
                       for m, ts in data["recent_orders"].items()},
        site_kill=_opt_switch(data["site_kill"]),
        global_kill=_opt_switch(data["global_kill"]),
    )


def _order(o: OpenOrder) -> dict[str, object]:
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
