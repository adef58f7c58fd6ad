"""The agent-side SDK: ``Tracer`` → runs and steps → Avro events on the raw topic.

The agent's thread only enqueues; a background thread encodes and produces, spooling to disk
while Kafka is unreachable. The only exceptions that reach the agent are ``EnforcementError``
subclasses (budgets, lack of progress, remote stop, a durable action whose audit record Kafka
did not acknowledge).
"""
from .capture import CapturePolicy, canonical_json, redact_text
from .context import get_current_run, get_current_step, propagate
from .enforcement import Budget
from .errors import AuditUnavailable, BudgetExceeded, EnforcementError, LackOfProgress, RunStopped
from .pricing import PriceTable
from .run import ApprovalRequest, Run
from .settings import ProducerSettings
from .step import Step
from .tracer import SDK_VERSION, Tracer

__all__ = [
    "SDK_VERSION",
    "ApprovalRequest",
    "Budget",
    "BudgetExceeded",
    "CapturePolicy",
    "EnforcementError",
    "AuditUnavailable",
    "LackOfProgress",
    "PriceTable",
    "ProducerSettings",
    "Run",
    "RunStopped",
    "Step",
    "Tracer",
    "canonical_json",
    "get_current_run",
    "get_current_step",
    "propagate",
    "redact_text",
]
