"""Billing: API keys, authentication, rate limits, prices, budgets and the cost ledger.

Below the request path (``orchestrator.serving``) and never importing it: a request is
known here only as an ``Exposure`` (what it may spend) and a ``Settlement`` (what it
did). Public API: ``Accounts``, ``Exposure``, ``Settlement``, ``KeyRecord``,
``KeyStore``, ``authenticate``, ``LedgerReader``.
"""

from orchestrator.billing.accounting import NO_TENANT, Accounts, Exposure, Settlement
from orchestrator.billing.auth import authenticate
from orchestrator.billing.keys import KeyRecord, KeyStore
from orchestrator.billing.ledger import LedgerReader

__all__ = [
    "NO_TENANT",
    "Accounts",
    "Exposure",
    "KeyRecord",
    "KeyStore",
    "LedgerReader",
    "Settlement",
    "authenticate",
]
