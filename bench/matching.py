"""Matching benchmark: (a) the integer book core beside a C++ std::map book on the same order
file; (b) the full per-message step decode -> risk -> match -> encode.

``.venv/bin/python -m bench.matching [--orders N] [--step-orders M] [--runs R] [--quick]``

(a) A deterministic order file (seed 42) is written once to ``bench/out/matching_orders_<N>.txt``:
    ~70 % adds, ~30 % cancels of earlier orders; prices in ticks of 0.01 EUR/MWh around a mid that
    random-walks from 100 EUR/MWh, passive orders a few ticks to ~4 EUR behind the mid, ~20 % of
    the adds crossing it (market-like orders with a limit); 0.1-5 MWh in lots of 0.001 MWh;
    200 accounts (self-trade prevention is on in both books). Python: `domain.matching.book`
    (``OrderBook.place`` per add: match, then rest the remainder; ``remove`` per cancel) fed
    pre-parsed integer tuples. C++: ``bench/cpp/book.cpp`` (``std::map`` levels of
    ``std::list``, ``unordered_map`` index), compiled here with ``g++ -O2`` into ``bench/out/``.
    Both time only the processing loop, each runs R times (the fastest run counts) and both
    report checksums (fills, filled lots, STP cancels, resting orders and lots), which must agree.
(b) M real ``SubmitOrder`` envelopes (the file's first adds on EPEX_AT_INTRADAY_15MIN) encoded
    beforehand; per message, timed: ``schemas.envelope.decode`` -> ``domain.risk.decide`` (the
    real decider, every rule; each site's state is a fixed state with fresh telemetry that is not
    carried forward, so the reservation bookkeeping of a long-running risk processor is not
    included) -> ``MatchingEngine.handle`` -> ``streams.codec.follow_up`` of every
    output event (Kafka key, value and headers of ``caused_by(...)``, the value byte-identical
    to ``schemas.envelope.encode``; what the matching processor emits), after an untimed warm-up
    on a tenth of the messages. Reports messages/s over
    the whole loop, per-message p50/p99 and the mean time of each stage.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.matching import MatchingEngine
from domain.matching.book import BUY, SELL, OrderBook
from domain.risk import Policy, RiskState, decide
from schemas.envelope import Envelope, decode, encode, new_envelope
from schemas.trading import ORDER_EVENTS, Side, SubmitOrder, TradeExecuted
from streams.codec import Parent, follow_up

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
CPP_SOURCE = BENCH / "cpp" / "book.cpp"
MARKET = "EPEX_AT_INTRADAY_15MIN"
Op = tuple[int, ...]


# -- the order file ----------------------------------------------------------------------------

def generate(n: int, path: Path, seed: int = 42) -> None:
    rng = random.Random(seed)
    mid = 10_000  # ticks of 0.01 EUR/MWh
    ids: list[int] = []
    lines: list[str] = []
    next_id = 1
    for _ in range(n):
        if ids and rng.random() < 0.3:
            victim = ids[-1 - min(int(rng.expovariate(1 / 200)), len(ids) - 1)]
            lines.append(f"C {victim}")
            continue
        mid = max(1_000, mid + rng.choice((-1, 0, 0, 1)))
        side = BUY if rng.random() < 0.5 else SELL
        if rng.random() < 0.2:
            offset = -rng.randint(1, 50)  # crossing
        else:
            offset = 1 + int(rng.expovariate(1 / 40)) % 400
        price = mid - offset if side == BUY else mid + offset
        lots = rng.randint(100, 5_000)  # 0.1 .. 5 MWh
        account = rng.randrange(200)
        lines.append(f"A {next_id} {side} {price} {lots} {account}")
        ids.append(next_id)
        next_id += 1
    path.write_text("\n".join(lines) + "\n")


def load(path: Path) -> list[Op]:
    ops: list[Op] = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[0] == "A":
            ops.append((0, *map(int, parts[1:])))
        else:
            ops.append((1, int(parts[1])))
    return ops


# -- (a) book core vs C++ ----------------------------------------------------------------------

def run_python(ops: list[Op]) -> dict[str, Any]:
    book: OrderBook[int] = OrderBook()
    place, remove = book.place, book.remove
    out: list[Any] = []
    fills = filled_lots = stp = 0
    t0 = time.perf_counter()
    for op in ops:
        if op[0] == 0:
            _, oid, side, price, lots, account = op
            place(oid, side, price, lots, account, True, out)  # match, rest the remainder
            if out:
                for _maker, got in out:
                    if got:
                        fills += 1
                        filled_lots += got
                    else:
                        stp += 1
                out.clear()
        else:
            remove(op[1])
    seconds = time.perf_counter() - t0
    resting = [lots for s in (BUY, SELL) for _, lots in book.orders(s)]
    return {"ops": len(ops), "seconds": seconds, "fills": fills, "filled_lots": filled_lots,
            "stp": stp, "resting": len(resting), "resting_lots": sum(resting)}


def run_cpp(path: Path, runs: int) -> dict[str, Any]:
    """Compile the C++ book and run it `runs` times; the fastest run."""
    binary = OUT / "book_cpp"
    subprocess.run(["g++", "-O2", "-std=c++17", "-o", str(binary), str(CPP_SOURCE)], check=True)
    results = [dict(json.loads(subprocess.run([str(binary), str(path)], check=True,
                                              capture_output=True, text=True).stdout))
               for _ in range(runs)]
    return min(results, key=lambda r: float(r["seconds"]))


# -- (b) decode -> risk -> match -> encode -----------------------------------------------------

def step_messages(ops: list[Op], m: int, start: datetime) -> list[bytes]:
    delivery = start + timedelta(days=1)
    messages: list[bytes] = []
    for n, op in enumerate(o for o in ops if o[0] == 0):
        if n == m:
            break
        _, oid, side, price, lots, account = op
        submitted = start + timedelta(microseconds=n)
        command = SubmitOrder(
            order_id=uuid.UUID(int=oid), account=f"acct-{account}", site=f"site-{account % 20}",
            market=MARKET, side=Side.BUY if side == BUY else Side.SELL,
            quantity_mwh=Decimal(lots) / 1000, limit_price_eur_mwh=Decimal(price) / 100,
            delivery_start=delivery, delivery_end=delivery + timedelta(minutes=15),
            submitted_at=submitted,
        )
        messages.append(encode(new_envelope(command, occurred_at=submitted, source="bench")))
    return messages


def run_step(messages: list[bytes], start: datetime) -> dict[str, Any]:
    policy = Policy.from_dict({
        "version": 1, "per_market_rps": {MARKET: 10**9},
        "limits": {"capacity_mwh": 10**6, "max_power_mw": 10**6},
        "sites": {f"site-{i}": {} for i in range(20)},
    })
    states = {f"site-{i}": RiskState(site=f"site-{i}", soc_pct=Decimal(50), soc_time=start,
                                     temperature_c=Decimal(25), temperature_time=start)
              for i in range(20)}
    engine = MatchingEngine()
    # pydantic keeps parametrised generics (`Envelope[OrderFilled]`, built by new_envelope) only
    # weakly: without a strong reference it rebuilds them every few hundred messages (~2 ms
    # each). Hold them, as a long-running processor effectively does.
    pinned = [Envelope[cls] for cls in (*ORDER_EVENTS, TradeExecuted)]  # type: ignore[valid-type]
    latencies: list[int] = []
    stages = [0, 0, 0, 0]  # ns in decode, risk, match, encode
    clock = time.perf_counter_ns
    events_out = rejected = 0
    t0 = time.perf_counter()
    for raw in messages:
        began = clock()
        envelope = decode(raw)
        command = envelope.payload
        decoded = clock()
        _, rejection = decide(states[command.site], command, command.submitted_at, policy)
        risked = clock()
        events = [rejection] if rejection else engine.handle(command, command.submitted_at)
        matched = clock()
        parent = Parent(envelope)
        encoded = [follow_up(parent, event, "matching") for event in events]
        done = clock()
        latencies.append(done - began)
        stages[0] += decoded - began
        stages[1] += risked - decoded
        stages[2] += matched - risked
        stages[3] += done - matched
        events_out += len(encoded)
        rejected += rejection is not None
    seconds = time.perf_counter() - t0
    del pinned
    latencies.sort()
    n = len(messages)
    return {"messages": n, "seconds": seconds, "events_out": events_out,
            "risk_rejected": rejected,
            "p50_us": latencies[n // 2] / 1000,
            "p99_us": latencies[int(n * 0.99)] / 1000,
            "mean_us": statistics.fmean(latencies) / 1000,
            "stage_mean_us": {name: ns / n / 1000 for name, ns in
                              zip(("decode", "risk", "match", "encode"), stages, strict=True)}}


# -- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--step-orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="(a): best of this many runs each")
    parser.add_argument("--quick", action="store_true", help="100k orders, 20k step messages")
    args = parser.parse_args(argv)
    if args.quick:
        args.orders, args.step_orders = 100_000, 20_000
    OUT.mkdir(exist_ok=True)
    path = OUT / f"matching_orders_{args.orders}.txt"
    if not path.exists():
        generate(args.orders, path)
    ops = load(path)
    load_before = os.getloadavg()
    cpp = run_cpp(path, args.runs)
    py = min((run_python(ops) for _ in range(args.runs)), key=lambda r: float(r["seconds"]))
    keys = ("fills", "filled_lots", "stp", "resting", "resting_lots")
    agree = all(py[k] == cpp[k] for k in keys)
    py_rate, cpp_rate = py["ops"] / py["seconds"], cpp["ops"] / cpp["seconds"]
    start = datetime(2024, 3, 1, tzinfo=UTC)
    messages = step_messages(ops, args.step_orders, start)
    run_step(messages[:len(messages) // 10], start)  # warm-up (pydantic's lazy set-up), untimed
    gc.collect()
    step = run_step(messages, start)
    step_rate = step["messages"] / step["seconds"]
    result = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
        "order_file": str(path.relative_to(BENCH.parent)),
        "book": {"python": py, "cpp": cpp, "checksums_agree": agree, "runs": args.runs,
                 "python_ops_s": py_rate, "cpp_ops_s": cpp_rate, "ratio": py_rate / cpp_rate},
        "step": {**step, "messages_s": step_rate},
    }
    (OUT / "matching.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("(a) book core, Python (integer fast path)", f"{py_rate:,.0f} ops/s",
         f"{py_rate / cpp_rate:.1%} of C++", ">= 20 % of C++"),
        ("(a) reference: C++ std::map book, g++ -O2", f"{cpp_rate:,.0f} ops/s", "100 %", ""),
        ("(b) decode -> risk -> match -> encode", f"{step_rate:,.0f} msg/s",
         f"p50 {step['p50_us']:.1f} us, p99 {step['p99_us']:.1f} us",
         ">= 400k msg/s, p99 <= 5 us"),
    ]
    stage = ", ".join(f"{k} {v:.1f}" for k, v in step["stage_mean_us"].items())
    lines = ["| measurement | throughput | relative / latency | target |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.write(f"\n{len(ops):,} ops ({path.name}); checksums agree: {agree} "
                     f"({', '.join(f'{k}={py[k]}' for k in keys)}); step: {step['messages']:,} "
                     f"messages -> {step['events_out']:,} events, {step['risk_rejected']} risk "
                     f"rejections; mean us per message: {stage}; load average "
                     f"{load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}\n")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
