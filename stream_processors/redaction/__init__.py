"""Secret and PII redaction: rules (pure patterns + validators) and the engine that applies a policy."""
from .engine import ACTIONS, DEFAULT_ACTIONS, RedactionError, Redactor
from .rules import CATEGORIES, RULES, RULES_BY_NAME, Rule

__all__ = ["ACTIONS", "CATEGORIES", "DEFAULT_ACTIONS", "RULES", "RULES_BY_NAME", "RedactionError",
           "Redactor", "Rule"]
