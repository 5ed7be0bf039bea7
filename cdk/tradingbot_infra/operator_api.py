"""The operator's cockpit on AWS (issue 17), on the same REST API as the webhook:

* ``ANY /api/{proxy+}`` -> the ``operator_api`` function behind a Cognito user-pool authorizer:
  API Gateway verifies the JWT (signature, expiry, issuer) before the function runs and passes
  its claims in ``requestContext.authorizer.claims``; the operator is the one whose ``cognito_sub``
  is the ``sub`` claim (``tradingbot operators add --cognito-sub``). An expired or missing token is
  a 401 from API Gateway itself. The caller sends the user's Cognito **ID token**
  (``Authorization: Bearer <id token>``): without authorization scopes on the method a REST API's
  user-pool authorizer accepts the ID token and refuses the access token (deployed and tested in
  https://github.com/awslabs/nx-plugin-for-aws/pull/828).
* ``GET /dashboard`` and ``/dashboard/{proxy+}`` -> the same function, without authorizer: the static
  page, which then calls ``/api`` with the operator's ID token.
* ``POST /telegram/webhook`` -> the ``telegram_webhook`` function, authenticated by the
  ``X-Telegram-Bot-Api-Secret-Token`` header (the secret's ``webhook_secret``; Telegram cannot send a JWT).
* EventBridge: the daily summary at 07:00 UTC, and every minute the stops/targets watcher.

Users of the pool are created by an administrator only (no self sign-up) and need TOTP MFA.

The dashboard signs in at the pool's managed login (the ``{prefix}-operators`` Cognito domain) with
the authorization code grant and PKCE, the only browser flow the ``Dashboard`` app client allows (no
implicit grant, no secret: a public client); its one callback URL is the page itself,
``https://API/prod/dashboard``. The page learns the domain and the client id from
``/dashboard/config.json`` (the function's ``OPERATOR_LOGIN_URL`` / ``OPERATOR_LOGIN_CLIENT_ID``),
redeems the code at ``/oauth2/token`` and sends the ID token to ``/api``
(https://docs.aws.amazon.com/cognito/latest/developerguide/using-pkce-in-authorization-code.html,
https://docs.aws.amazon.com/cognito/latest/developerguide/authorization-endpoint.html,
https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html).
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .config import InfraConfig
from .naming import Concern

#: the REST API's stage (api.py ``deploy_options``)
STAGE = "prod"


class OperatorApi(Concern):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        cfg: InfraConfig,
        api: apigw.RestApi,
        operator: lambda_.IFunction,
        telegram: lambda_.IFunction,
        operator_function: lambda_.Function | None = None,
    ) -> None:
        super().__init__(scope, cid)
        self.user_pool = cognito.UserPool(
            self,
            "Operators",
            user_pool_name=f"{cfg.prefix}-operators",
            self_sign_up_enabled=False,  # an administrator creates each operator
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.domain = self.user_pool.add_domain(
            "Login",
            # a prefix is unique per Region across all AWS accounts: the account id makes it ours
            cognito_domain=cognito.CognitoDomainOptions(domain_prefix=f"{cfg.prefix}-operators-{Aws.ACCOUNT_ID}"),
        )
        # the page's own address is the one callback: built from the API's id and the stage name, not
        # from the stage resource (the stage depends on this function's methods: a cycle)
        self.dashboard_urls = [f"https://{api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}/{STAGE}/dashboard"]
        if cfg.custom_domain_name:
            self.dashboard_urls.append(f"https://{cfg.custom_domain_name}/dashboard")
        self.client = self.user_pool.add_client(
            "Dashboard",
            auth_flows=cognito.AuthFlow(user_srp=True),
            generate_secret=False,  # a browser page cannot keep a secret
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),  # with PKCE; no implicit grant
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                callback_urls=self.dashboard_urls,
                logout_urls=self.dashboard_urls,
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(1),
            prevent_user_existence_errors=True,
        )
        if operator_function is not None:  # the page's /dashboard/config.json and its CSP read these
            operator_function.add_environment("OPERATOR_LOGIN_URL", self.domain.base_url())
            operator_function.add_environment("OPERATOR_LOGIN_CLIENT_ID", self.client.user_pool_client_id)
        self.authorizer = apigw.CognitoUserPoolsAuthorizer(
            self,
            "OperatorAuthorizer",
            cognito_user_pools=[self.user_pool],
            identity_source="method.request.header.Authorization",
        )
        to_operator = apigw.LambdaIntegration(operator, proxy=True)
        api_root = api.root.add_resource("api")
        api_root.add_resource("{proxy+}").add_method(
            "ANY", to_operator, authorizer=self.authorizer, authorization_type=apigw.AuthorizationType.COGNITO
        )
        dashboard = api.root.add_resource("dashboard")
        dashboard.add_method("GET", to_operator)
        dashboard.add_resource("{proxy+}").add_method("GET", to_operator)
        api.root.add_resource("telegram").add_resource("webhook").add_method(
            "POST", apigw.LambdaIntegration(telegram, proxy=True)
        )
        self.daily_summary = events.Rule(
            self,
            "DailySummary",
            schedule=events.Schedule.cron(minute="0", hour="7"),
            description="Telegram daily summary to each operator (tradingbot.pipeline.notifications)",
            targets=[_task(telegram, "daily_summary")],
        )
        self.watch_fills = events.Rule(
            self,
            "WatchFills",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            description="Telegram: stops and targets hit since the last minute (tradingbot.pipeline.notifications)",
            targets=[_task(telegram, "watch_fills")],
        )


def _task(fn: lambda_.IFunction, task: str) -> targets.LambdaFunction:
    """A scheduled invocation with ``{"task": ...}``; no retries (the next run covers a missed one)."""
    return targets.LambdaFunction(fn, event=events.RuleTargetInput.from_object({"task": task}), retry_attempts=0)
