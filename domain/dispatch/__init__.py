"""EMS optimisation and strategy selection (issue 5, items 2-4; seed 003, seed 004 2.5 and 3.1).

`Dispatcher(site).plan(strategy, inputs)` optimises one site's battery for one of the four
strategies (cvxpy on HiGHS, problems built once and re-solved with new Parameter values);
`score` values plans under one common site cost function, `select_strategy` switches only above
the site's threshold, `MlSelector` learns the best strategy from labelled history;
`load_ems_config` reads ``ems.yaml`` (multi-site and the predecessor's single-site file);
`aggregate` is the multi-site view. Pure: no I/O, no clock, no logging.
"""

from domain.dispatch.config import EmsConfigError, load_ems_config
from domain.dispatch.model import (
    DEFAULT_DEGRADATION_COST_EUR_MWH,
    Battery,
    DispatchError,
    DispatchInputs,
    FeedInLimit,
    FeedInRule,
    Plan,
    SiteConfig,
    Tariff,
    TimeWindow,
    TouRule,
    export_limit_kw,
    import_fee_eur_mwh,
)
from domain.dispatch.optimiser import Dispatcher
from domain.dispatch.selection import MlSelector, score, select_strategy, site_cost_eur
from domain.dispatch.sites import AggregatedState, SiteState, aggregate

__all__ = [
    "DEFAULT_DEGRADATION_COST_EUR_MWH", "AggregatedState", "Battery", "DispatchError",
    "DispatchInputs", "Dispatcher", "EmsConfigError", "FeedInLimit", "FeedInRule", "MlSelector",
    "Plan", "SiteConfig", "SiteState", "Tariff", "TimeWindow", "TouRule", "aggregate",
    "export_limit_kw", "import_fee_eur_mwh", "load_ems_config", "score", "select_strategy",
    "site_cost_eur",
]
