"""TradingBot AI infrastructure: the CDK v2 app (stacks, packaging, cdk-nag suppressions)."""
