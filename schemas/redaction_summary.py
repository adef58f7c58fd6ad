"""What the product itself writes into an event's redaction summary and content capture: the
names a ``redaction.rule_counts`` map may hold, and the bound of a content preview.

Shared by the gateway (which refuses any other summary name: a client's key there would be stored
in the events table's ``redaction_counts`` map as sent), the processors (which merge only these
from a summary an edge set) and the SDK. The processors' rules check at import that each of their
names is listed here, so a new rule cannot write a name the gateway would refuse.
"""
from __future__ import annotations

# The processors' rules (stream_processors/redaction/rules.py RULES) and their capture policy.
RULE_NAMES = frozenset((
    "pem_private_key", "jwt", "aws_access_key_id", "aws_secret_access_key", "anthropic_api_key",
    "openai_api_key", "github_token", "slack_token", "slack_webhook", "stripe_key", "google_api_key",
    "google_oauth_token", "prefixed_token", "glued_hex_token", "dotted_token", "vendor_token",
    "bearer_token", "url_credentials", "credential_assignment", "sensitive_assignment", "cli_credential",
    "prose_password", "credential_word_value", "connection_string_field", "national_id_assignment",
    "us_ssn_context", "national_id_context", "phone_international", "email", "iban", "payment_card",
    "us_ssn", "uk_nino", "phone", "ipv4", "ipv6", "putty_private_key", "localized_password", "credential_file",
    "contact_uri",
    "capture_policy",  # a preview or reference the capture mode does not allow, removed
))
# Why an attribute or a field was dropped by an edge or the processors, counted by name.
DROP_REASONS = frozenset(("content_key", "free_value_too_long", "free_value_prose", "credential_key",
                          "free_key_too_long", "free_key_prose", "bytes_value", "structured_value"))
DROPPED_PREFIX = "dropped_attribute:"


def is_dropped_name(name: str) -> bool:
    """``dropped_attribute:<reason>`` for a reason the product writes."""
    return name.startswith(DROPPED_PREFIX) and name[len(DROPPED_PREFIX):] in DROP_REASONS


def is_summary_name(name: str) -> bool:
    """A name the product writes into ``redaction.rule_counts``."""
    return name in RULE_NAMES or is_dropped_name(name)


# A REDACTED step's content preview is at most this many characters (the SDK cuts it there, the
# processors cut whatever arrives longer).
PREVIEW_CHARS = 160
