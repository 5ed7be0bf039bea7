"""Compute stack: the functions, the trading and optimisation state machines, the webhook API and
the market feed, one concern construct each."""

from __future__ import annotations

from pathlib import Path

from constructs import Construct

from . import asl
from .api import WebhookApi
from .config import InfraConfig
from .data import DataStack
from .deploy import SafeDeploys
from .feed import MarketFeed
from .functions import FUNCTIONS
from .lambdas import Functions
from .naming import HIDDEN_ID, ConcernStack
from .network import NetworkStack
from .operator_api import OperatorApi
from .paths import OPTIMISE_ASL, STATE_MACHINE_ASL
from .reconcile import ReconcileSchedule
from .redrive import RedriveSchedule
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
        # issue 20: everything that invokes a function invokes its `live` alias, which CodeDeploy shifts
        # (deploy.py) after the migration custom resource has brought the schema to head
        fns = self.lambdas.aliases
        self.deploys = SafeDeploys(self, "Deploys", cfg=cfg, migrate=self.lambdas.functions["migrate"], aliases=fns)
        self.trading = TradingStateMachine(self, "Trading", cfg=cfg, functions=fns)
        for spec in FUNCTIONS:
            if spec.needs_state_machine:
                self.trading.allow_start(self.lambdas.functions[spec.name])  # its environment and role
        self.optimisation = OptimisationStateMachine(
            self, "Optimisation", cfg=cfg, functions=fns, artifacts=data.artifacts.bucket
        )
        # issue 16: every minute, accepted alerts without a decision are re-driven (after the optimisation
        # schedule, so that stays the stack's first rule)
        self.redrive = RedriveSchedule(self, "Redrive", sweeper=fns["sweeper"])
        # issue 15: every minute, reconcile orders, positions and protective orders with the venues
        self.reconcile = ReconcileSchedule(self, "Reconcile", reconcile=fns["reconcile"])
        # API Gateway names its invoke permissions from the API's full path: the hidden id (naming.py)
        self.webhook_api = WebhookApi(self, HIDDEN_ID, cfg=cfg, webhook=fns["webhook"])
        # issue 17: /api (Cognito), /dashboard, /telegram/webhook on the same API; notification schedules
        self.operator_api = OperatorApi(
            self, "OperatorApi", cfg=cfg, api=self.webhook_api.api, operator=fns["operator_api"],
            telegram=fns["telegram_webhook"], operator_function=self.lambdas.functions["operator_api"],
        )  # fmt: skip
        self.market_feed = MarketFeed(self, "MarketFeed", cfg=cfg, network=network, data=data)
