"""What the rules found in one text, made into disjoint spans: several rules may read the same
characters (a card's digits as a phone too, a URL's credentials inside a longer token), and a
redaction must replace each character once."""
from __future__ import annotations

from dataclasses import dataclass

from .rules import Rule

# Categories whose matches pass a checksum (Luhn, mod-97): stronger evidence than a loose shape.
_CHECKSUMMED = frozenset(("payment_card", "iban"))


@dataclass(frozen=True, slots=True)
class Finding:
    rule: Rule
    start: int
    end: int


def disjoint(found: list[Finding]) -> tuple[Finding, ...]:
    """``found`` sorted by position with overlaps merged: the earlier (then longer) span keeps
    its rule and grows to cover both."""
    if len(found) > 1:
        checked = [f for f in found if f.rule.category in _CHECKSUMMED]
        if checked:
            # a loose phone pattern overlapping a checksum-validated card or IBAN is the same
            # digits read twice ("limit=11 5599 8293 6548 0597"): the card wins, "11" stays
            found = [f for f in found if f.rule.name != "phone" or not any(
                f.start < c.end and c.start < f.end for c in checked)]
    if len(found) > 1:
        found.sort(key=lambda f: (f.start, -(f.end - f.start)))
        merged = [found[0]]
        for f in found[1:]:
            last = merged[-1]
            if f.start < last.end:  # overlap: the earlier/longer span wins, both are covered
                if f.end > last.end:
                    merged[-1] = Finding(last.rule, last.start, f.end)
                continue
            merged.append(f)
        found = merged
    return tuple(found)
