"""Pre-trade risk: pure rules, the per-site risk state and the decider (issue 3, item 2).

`decide(state, command, now, policy)` approves (and reserves) or rejects an order command;
`evolve(state, payload, now)` folds telemetry, order events and kill switches into the state.
`Policy.from_dict` validates the parsed ``policy/policy.yaml``; `changelog(before, after)` and
`restore(records)` are the incremental changelog of the states. Pure: no I/O, no clock.
"""

from domain.risk.codec import (
    ChangelogFormatError,
    changelog,
    restore,
    snapshot,
    state_from_dict,
    state_to_dict,
)
from domain.risk.config import RATE_WINDOW_S, Policy, PolicyError, SiteLimits
from domain.risk.decider import RiskCommand, check, decide
from domain.risk.rules import Block, Rejection
from domain.risk.state import Delivery, KillSwitch, OpenOrder, Period, RiskState, evolve

__all__ = [
    "RATE_WINDOW_S", "Block", "ChangelogFormatError", "Delivery", "KillSwitch", "OpenOrder",
    "Period", "Policy", "PolicyError", "Rejection", "RiskCommand", "RiskState", "SiteLimits",
    "changelog", "check", "decide", "evolve", "restore", "snapshot", "state_from_dict",
    "state_to_dict",
]
