"""The simulated battery of `bess up` runs at the replay's speed (simulated seconds per wall
second), so it follows plans made in the replay's event time."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from domain.telemetry.battery import BatteryParams, BatteryState
from gateways.simulator.device import SimulatedBattery
from infra.local.stack import service_commands
from infra.modbus import load_profile
from infra.settings import Settings


def _discharge_for(speed: float, wall_s: float) -> float:
    """SoC drop (percentage points) of a 4 MWh / 2 MW battery discharging at 2 MW."""
    params = BatteryParams(capacity_mwh=4.0, max_charge_mw=2.0, max_discharge_mw=2.0)
    sim = SimulatedBattery("site-x", "sim-x", load_profile("default"), params,
                           BatteryState(soc_pct=80.0), tick_s=0.01, speed=speed)
    sim.set_setpoint(2.0)

    async def run() -> None:
        task = asyncio.create_task(sim.run_physics())
        await asyncio.sleep(wall_s)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    return 80.0 - sim.state.soc_pct


def test_speed_scales_simulated_time() -> None:
    # 0.3 wall seconds at 3600x = 1,080 simulated seconds at 2 MW = 0.6 MWh >= 15 % of 4 MWh
    fast = _discharge_for(3600.0, 0.3)
    slow = _discharge_for(1.0, 0.3)
    assert fast > 13.0
    assert slow < 0.05
    assert fast > 300 * slow


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        SimulatedBattery("s", "d", load_profile("default"), speed=0.0)


def test_bess_up_runs_simulators_at_the_replay_speed() -> None:
    settings = Settings(replay_speed=1800.0)
    replay = service_commands(settings, replay=True)
    live = service_commands(settings, replay=False)
    sims = [k for k in replay if k.startswith("sim-")]
    assert sims
    for name in sims:
        assert replay[name][replay[name].index("--speed") + 1] == "1800"
        assert live[name][live[name].index("--speed") + 1] == "1"
