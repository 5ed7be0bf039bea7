"""The only SQL the product runs, one module per aggregate. Each function takes a Session inside a
transaction (``session_scope``) and never commits itself, so a caller can group alert + decision + order
into one atomic unit. ``from tradingbot.adapters.persistence import repositories as repo`` gives all of them."""

from tradingbot.adapters.persistence.repositories.accounts import (
    TOKEN_PREFIX,
    RiskLimits,
    create_account,
    find_account_by_token,
    get_account,
    hash_token,
    list_accounts,
    load_credentials,
    new_webhook_token,
    reencrypt_all_credentials,
    rotate_webhook_token,
    set_limits,
    store_credentials,
)
from tradingbot.adapters.persistence.repositories.alerts import (
    RecordedAlert,
    alerts_by_status,
    record_alert,
    set_alert_status,
)
from tradingbot.adapters.persistence.repositories.decisions import record_decision
from tradingbot.adapters.persistence.repositories.orders import (
    ORDER_TRANSITIONS,
    create_order,
    recent_orders,
    record_fill,
    transition_order,
)

__all__ = [
    "ORDER_TRANSITIONS",
    "TOKEN_PREFIX",
    "RecordedAlert",
    "RiskLimits",
    "alerts_by_status",
    "create_account",
    "create_order",
    "find_account_by_token",
    "get_account",
    "hash_token",
    "list_accounts",
    "load_credentials",
    "new_webhook_token",
    "recent_orders",
    "record_alert",
    "record_decision",
    "record_fill",
    "reencrypt_all_credentials",
    "rotate_webhook_token",
    "set_alert_status",
    "set_limits",
    "store_credentials",
    "transition_order",
]
