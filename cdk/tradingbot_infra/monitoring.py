"""Monitoring stack: the alarm topic, log metric filters, alarms with their composite, and the
dashboard (cdk/tradingbot_infra/alarms.py), over the metrics of tradingbot_infra.metrics."""

from __future__ import annotations

from constructs import Construct

from .alarms import Alarms, AlarmTopic, Dashboard, LogMetrics
from .cockpit_monitoring import CockpitMonitoring
from .compute import ComputeStack
from .config import InfraConfig
from .data import DataStack
from .metrics import PlatformMetrics
from .naming import ConcernStack


class MonitoringStack(ConcernStack):
    def __init__(
        self, scope: Construct, cid: str, *, cfg: InfraConfig, data: DataStack, compute: ComputeStack, **kwargs: object
    ) -> None:
        super().__init__(scope, cid, **kwargs)  # type: ignore[arg-type]
        self.add_stack_dependency(compute)
        self.topic = AlarmTopic(self, "AlarmTopic", cfg=cfg, notify=compute.lambdas.functions["notify"])
        LogMetrics(self, "LogMetrics", log_groups=dict(compute.lambdas.log_groups))
        metrics = PlatformMetrics(cfg, data, compute)
        self.alarms = Alarms(self, "AlarmSet", cfg=cfg, metrics=metrics, action=self.topic.action)
        Dashboard(self, "Overview", cfg=cfg, metrics=metrics, alarms=self.alarms)
        # issue 17: business metrics (EMF) dashboard and the rejection-spike alarm
        self.cockpit = CockpitMonitoring(self, "Cockpit", cfg=cfg, action=self.topic.action)
