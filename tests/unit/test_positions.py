"""Average-cost position and realised PnL (projections/trading.apply_fill)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from projections.trading import apply_fill
from schemas.trading import Side


def test_open_add_reduce_close() -> None:
    net, avg, r = apply_fill(D(0), D(0), Side.BUY, D("1.0"), D("40"))
    assert (net, avg, r) == (D("1.0"), D("40"), D(0))
    net, avg, r = apply_fill(net, avg, Side.BUY, D("1.0"), D("50"))
    assert (net, avg, r) == (D("2.0"), D("45"), D(0))
    net, avg, r = apply_fill(net, avg, Side.SELL, D("0.5"), D("100"))
    assert (net, avg, r) == (D("1.5"), D("45"), D("27.5"))  # (100 - 45) * 0.5
    net, avg, r = apply_fill(net, avg, Side.SELL, D("1.5"), D("30"))
    assert (net, avg, r) == (D("0.0"), D(0), D("-22.5"))  # (30 - 45) * 1.5


def test_short_then_flip_long_opens_remainder_at_fill_price() -> None:
    net, avg, r = apply_fill(D(0), D(0), Side.SELL, D("1"), D("80"))
    assert (net, avg) == (D("-1"), D("80"))
    net, avg, r = apply_fill(net, avg, Side.BUY, D("3"), D("60"))
    assert (net, avg, r) == (D("2"), D("60"), D("20"))  # covered 1 MWh at 20 EUR/MWh profit


@given(st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]),
                          st.integers(1, 50).map(lambda q: D(q) / 10),
                          st.integers(-500, 3000).map(D)), min_size=1, max_size=40),
       st.integers(-500, 3000).map(D))
def test_total_pnl_equals_cash_flow_plus_mark_value(fills, mark) -> None:
    """Realised + unrealised PnL = cash received - cash paid + net energy valued at the mark."""
    net, avg, realised, cash = D(0), D(0), D(0), D(0)
    for side, qty, price in fills:
        net, avg, r = apply_fill(net, avg, side, qty, price)
        realised += r
        cash += qty * price if side is Side.SELL else -qty * price
    unrealised = net * (mark - avg)
    # exact up to the 28-digit rounding of the average price (a division)
    assert abs((realised + unrealised) - (cash + net * mark)) < D("1e-20")
