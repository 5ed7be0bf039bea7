"""Network: a VPC over two AZs, VPC endpoints for AWS APIs, and every security group.

Security groups of the clients (Lambdas, feed, endpoints) live here; the data stack creates
the server-side groups and opens them to these clients with ``allow_from``, which CDK places in
the data stack (both the ingress and the client's egress rule), so no reference points back
from network to data. The least-privilege graph:
    Lambda --5432--> RDS Proxy --5432--> RDS
    Lambda, feed --6379--> Redis
    Lambda, feed --443--> VPC endpoints (AWS APIs) and NAT (exchanges, LLM APIs, Telegram)
"""

from __future__ import annotations

from aws_cdk import Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from .config import InfraConfig
from .util import retention

POSTGRES_PORT = 5432
REDIS_PORT = 6379

# Interface endpoints: AWS API calls from private subnets stay off the NAT gateway (the source
# document's cost advice: NAT data processing is charged per GB, endpoints per hour).
INTERFACE_ENDPOINTS = {
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "StepFunctions": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
}


def security_group(scope: Construct, cid: str, vpc: ec2.IVpc, description: str, prefix: str) -> ec2.SecurityGroup:
    # no default allow-all egress: every outbound rule is written down
    group = ec2.SecurityGroup(scope, cid, vpc=vpc, description=description, allow_all_outbound=False)
    Tags.of(group).add("Name", f"{prefix}-{cid}")
    return group


class NetworkStack(Stack):
    def __init__(self, scope: Construct, cid: str, *, cfg: InfraConfig, **kwargs: object) -> None:
        super().__init__(scope, cid, **kwargs)  # type: ignore[arg-type]

        flow_log_group = logs.LogGroup(self, "FlowLogs", retention=retention(cfg.log_retention_days))
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            max_azs=2,
            nat_gateways=cfg.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                # /20: Lambda ENIs (Hyperplane) and Fargate tasks
                ec2.SubnetConfiguration(name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20),
                ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
            flow_logs={
                "rejected": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                    # rejected packets are what a security review needs; ALL would triple the log bill
                    traffic_type=ec2.FlowLogTrafficType.REJECT,
                )
            },
        )
        self.app_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.data_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        def sg(cid: str, description: str) -> ec2.SecurityGroup:
            return security_group(self, cid, self.vpc, description, cfg.prefix)

        self.lambda_sg = sg("LambdaSg", "pipeline Lambdas: out to RDS Proxy, Redis, HTTPS")
        self.feed_sg = sg("FeedSg", "market feed task: out to Redis and exchange WebSockets (443)")
        self.endpoint_sg = sg("EndpointSg", "interface VPC endpoints: HTTPS in from Lambdas and the feed")

        https = ec2.Port.tcp(443)
        for client in (self.lambda_sg, self.feed_sg):
            # exchanges, LLM APIs and Telegram have no fixed IPs: HTTPS to anywhere, through NAT
            client.add_egress_rule(ec2.Peer.any_ipv4(), https, "HTTPS: AWS endpoints, exchanges, LLM APIs")
            self.endpoint_sg.add_ingress_rule(client, https, "AWS API calls via interface endpoints")

        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        for name, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=self.app_subnets,
                security_groups=[self.endpoint_sg],
                open=False,  # the endpoint SG above is the allow-list, not the whole VPC CIDR
                private_dns_enabled=True,
            )
