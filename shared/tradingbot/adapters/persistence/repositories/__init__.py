"""The only SQL the product runs, one module per aggregate. Each function takes a Session inside a
transaction (``session_scope``) and never commits itself, so a caller can group alert + decision + order
into one atomic unit.

Uniqueness is enforced with ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, not by catching
IntegrityError: race-free across processes, one round trip, and the caller's transaction stays
usable, so a duplicate becomes a clear domain error (or an "already recorded" answer).

``from tradingbot.adapters.persistence import repositories as repo`` gives all of them.
"""

from tradingbot.adapters.persistence.repositories.accounts import (
    TOKEN_PREFIX,
    AccountRef,
    RiskLimits,
    account_by_id,
    account_refs,
    create_account,
    credential_hints,
    find_account,
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
from tradingbot.adapters.persistence.repositories.decisions import (
    attach_execution_trace,
    find_decision,
    recent_decisions,
    record_decision,
)
from tradingbot.adapters.persistence.repositories.executions import (
    find_execution,
    store_execution,
)
from tradingbot.adapters.persistence.repositories.models import (
    active_model_version,
    list_model_versions,
    register_model_version,
)
from tradingbot.adapters.persistence.repositories.orders import (
    ORDER_TRANSITIONS,
    LiveOrderRow,
    create_order,
    filled_quantity,
    known_exchange_order_ids,
    lock_account_orders,
    order_by_client_id,
    order_fills,
    order_status,
    orders_by_client_ids,
    orders_in_status,
    recent_orders,
    record_fill,
    transition_order,
    unresolved_orders,
)
from tradingbot.adapters.persistence.repositories.paper import (
    add_paper_order,
    lock_paper_wallet,
    paper_leverage,
    paper_order,
    paper_position,
    paper_positions,
    resting_paper_orders,
    set_paper_symbol_setting,
    upsert_paper_position,
)
from tradingbot.adapters.persistence.repositories.positions import (
    open_positions,
    position_matches,
    realized_pnl_since,
    sync_positions,
)

__all__ = [
    "ORDER_TRANSITIONS",
    "TOKEN_PREFIX",
    "AccountRef",
    "LiveOrderRow",
    "RecordedAlert",
    "RiskLimits",
    "account_by_id",
    "account_refs",
    "active_model_version",
    "add_paper_order",
    "alerts_by_status",
    "attach_execution_trace",
    "create_account",
    "create_order",
    "credential_hints",
    "filled_quantity",
    "find_account",
    "find_account_by_token",
    "find_decision",
    "find_execution",
    "get_account",
    "hash_token",
    "known_exchange_order_ids",
    "list_accounts",
    "list_model_versions",
    "load_credentials",
    "lock_account_orders",
    "lock_paper_wallet",
    "new_webhook_token",
    "open_positions",
    "order_by_client_id",
    "order_fills",
    "order_status",
    "orders_by_client_ids",
    "orders_in_status",
    "paper_leverage",
    "paper_order",
    "paper_position",
    "paper_positions",
    "position_matches",
    "realized_pnl_since",
    "recent_decisions",
    "recent_orders",
    "record_alert",
    "record_decision",
    "record_fill",
    "reencrypt_all_credentials",
    "register_model_version",
    "resting_paper_orders",
    "rotate_webhook_token",
    "set_alert_status",
    "set_limits",
    "set_paper_symbol_setting",
    "store_credentials",
    "store_execution",
    "sync_positions",
    "transition_order",
    "unresolved_orders",
    "upsert_paper_position",
]
