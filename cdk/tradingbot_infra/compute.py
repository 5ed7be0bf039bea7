"""Compute stack: the functions, the trading and optimisation state machines, the webhook API and
the market feed, one concern construct each."""

from __future__ import annotations

from pathlib import Path

from constructs import Construct

from . import asl
from .api import WebhookApi
from .config import InfraConfig
from .data import DataStack
from .feed import MarketFeed
from .functions import FUNCTIONS
from .lambdas import Functions
from .naming import HIDDEN_ID, ConcernStack
from .network import NetworkStack
from .paths import OPTIMISE_ASL, STATE_MACHINE_ASL
from .state_machines import OptimisationStateMachine, TradingStateMachine


class ComputeStack(ConcernStack):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        cfg: InfraConfig,
        network: NetworkStack,
        data: DataStack,
        bundle_dir: Path,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, cid, **kwargs)  # type: ignore[arg-type]
        # explicit, before any grant: KMS/secret grants then go to the Lambda roles' policies
        # instead of the key policy in the data stack (which would make data depend on compute)
        self.add_stack_dependency(data)
        for definition in (STATE_MACHINE_ASL, OPTIMISE_ASL):  # before minutes of bundling, not after
            asl.check_asl_placeholders(definition)
        self.lambdas = Functions(self, "Functions", cfg=cfg, network=network, data=data, bundle_dir=bundle_dir)
        fns = self.lambdas.functions
        self.trading = TradingStateMachine(self, "Trading", cfg=cfg, functions=fns)
        for spec in FUNCTIONS:
            if spec.needs_state_machine:
                self.trading.allow_start(fns[spec.name])
        self.optimisation = OptimisationStateMachine(self, "Optimisation", cfg=cfg, functions=fns)
        # API Gateway names its invoke permissions from the API's full path: the hidden id (naming.py)
        self.webhook_api = WebhookApi(self, HIDDEN_ID, cfg=cfg, webhook=fns["webhook"])
        self.market_feed = MarketFeed(self, "MarketFeed", cfg=cfg, network=network, data=data)
