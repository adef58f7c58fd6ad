"""A cheap test over a raw record's bytes: may the redaction engine change anything in it?

``may_need_redaction(raw)`` is a SUPERSET trigger for the byte pass-through hot path: it is True
whenever ``Redactor.redact_event`` would change a string of the record (a rule match, a content
attribute key dropped, a free value too long). False means the original bytes may go on as they
are. Why it holds by construction: Avro strings are contiguous UTF-8 in the record, and

- every rule runs only on strings that match one of ``rules.PREFILTER_PATTERNS`` (ASCII, no
  lookarounds; the engine checks them the same way, over the string's UTF-8); the same patterns
  over the record's bytes match wherever they match one of its strings;
- an attribute is dropped for its key only if the key holds one of ``content_trigger_words()``;
- a free value is dropped for its length only if it holds ``LONG_TEXT_RUN``, the same pattern here.

Not visible in bytes: ``payload.content`` (a preview or reference) is stripped by the tenant's
capture mode, not by its text. A caller that passes bytes through must still send a record whose
content branch is set to the engine unless the tenant's mode is REDACTED.
"""
from __future__ import annotations

from agentstream.schemas.attribute_keys import LONG_TEXT_RUN, content_trigger_words

from .multipattern import compile_any
from .rules import PREFILTER_PATTERNS

PATTERNS: tuple[str, ...] = PREFILTER_PATTERNS + (
    "(?i:" + "|".join(sorted(content_trigger_words())) + ")", LONG_TEXT_RUN)

may_need_redaction = compile_any(PATTERNS)
may_need_redaction.__doc__ = "True unless the engine would surely leave every string of ``raw`` as it is."
