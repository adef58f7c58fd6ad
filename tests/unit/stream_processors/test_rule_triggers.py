"""A rule's trigger decides whether the rule runs at all: Hyperscan may answer it only where it
answers exactly as ``re.search`` would (rules.words_trigger), including the non-ASCII characters
``re`` folds to an ASCII letter under IGNORECASE."""
from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import pytest

from agentstream.stream_processors.redaction.keywords import TRIGGER_WORDS
from agentstream.stream_processors.redaction.multipattern import UNICODE_FOLDS, words_trigger
from agentstream.stream_processors.redaction.phones import CONTEXT_WORDS, PHONE_CONTEXT_SOURCE

CORPUS = [json.loads(line)["text"] for line in
          (Path(__file__).parent / "corpus.jsonl").read_text().splitlines() if line.strip()]
WORD_LISTS = [TRIGGER_WORDS, ("pass", "pwd", "secret", "key", "token"), ("ssn", "soc"), ("aws",),
              ("aadhaar", "cpf", "bsn", "pesel", "sin", "social", "nie", "nif", "dni", "steuer", "tax", "tin",
               "personnummer", "insee", "nir", "curp", "nhs", "passport", "national"),
              ("pass", "pw", "pin", "kennw", "contrase", "senha", "wachtw", "senord", "salasan")]


def test_the_fold_table_is_every_non_ascii_character_re_folds_to_an_ascii_letter():
    any_letter = re.compile("(?i)[a-z]")
    found: dict[str, set[str]] = {}
    for x in range(0x80, sys.maxunicode + 1):
        c = chr(x)
        if any_letter.fullmatch(c):
            for letter in "abcdefghijklmnopqrstuvwxyz":
                if re.fullmatch("(?i)" + letter, c):
                    found.setdefault(letter, set()).add(c)
    assert found == {k: set(v) for k, v in UNICODE_FOLDS.items()}


@pytest.mark.parametrize("ascii_only", [True, False])
@pytest.mark.parametrize("words", WORD_LISTS, ids=[w[0] + str(len(w)) for w in WORD_LISTS])
def test_words_trigger_answers_as_re_search(words, ascii_only):
    reference = re.compile(("(?ai)" if ascii_only else "(?i)") + "|".join(words))
    trigger = words_trigger(words, ascii_only)
    rnd = random.Random(len(words) * 2 + ascii_only)
    letters = "".join(sorted(set("".join(words))))
    alphabet = letters + letters.upper() + "".join(c for f in UNICODE_FOLDS.values() for c in f) + \
        " _-=:0ßẞéİıſK\u212a\ud800\u0301"
    texts = CORPUS + ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 14))) for _ in range(20_000)]
    texts += [w.upper() for w in words] + [w.replace("s", "\u017f").replace("k", "\u212a").replace("i", "\u0131")
                                           for w in words]
    for t in texts:
        assert trigger(t) == (reference.search(t) is not None), (t, words, ascii_only)


def test_only_plain_words_are_accepted():
    with pytest.raises(ValueError):
        words_trigger(("pass(word)?",), True)


def _context_alternatives() -> list[str]:
    i = PHONE_CONTEXT_SOURCE.index("(?i:") + 4
    depth, alts = 0, [""]
    for ch in PHONE_CONTEXT_SOURCE[i:]:
        if ch == "(":
            depth += 1
        if ch == ")":
            if depth == 0:
                break
            depth -= 1
        if ch == "|" and depth == 0:
            alts.append("")
            continue
        alts[-1] += ch
    return alts


# Every spelling each alternative of the phone context group allows (optional parts in and out).
SPELLINGS = {
    "phone": ["phone"], "tel": ["tel"], "telephone": ["telephone"], "mobile": ["mobile"], "cell": ["cell"],
    "fax": ["fax"], "callback": ["callback"], "call[ _-]?back": ["callback", "call back", "call_back", "call-back"],
    "whatsapp": ["whatsapp"], "sms": ["sms"],
    "contact[ _-]?number": ["contactnumber", "contact number", "contact_number", "contact-number"],
    "fono": ["fono"], "numero": ["numero"], "mero": ["mero"], "nummer": ["nummer"], "celular": ["celular"],
    "handy": ["handy"], "movil": ["movil"], "portable": ["portable"], "cellulare": ["cellulare"], "msisdn": ["msisdn"],
    "call(?: me)?(?: on| at)?": ["call", "call me", "call on", "call at", "call me on", "call me at"],
    "ring": ["ring"], "text(?: me)?(?: on| at)?": ["text", "text me", "text on", "text me at"], "dial": ["dial"],
    "number": ["number"],
}


def test_the_phone_context_gate_holds_a_word_of_every_context_the_pattern_allows():
    assert _context_alternatives() == list(SPELLINGS)  # a new alternative needs its spellings here
    context = re.compile(PHONE_CONTEXT_SOURCE)
    gate = words_trigger(CONTEXT_WORDS, ascii_only=False)
    folds = str.maketrans({"s": "\u017f", "k": "\u212a", "i": "\u0131", "I": "\u0130"})
    matched = 0
    for spellings in SPELLINGS.values():
        for s in spellings:
            for word in (s, s.upper(), s.title(), s.translate(folds)):
                for text in (f"{word}: +1 415 555 0100", f"my {word} is 020 7946 0958.", f"{word}=0201234567"):
                    if context.search(text):
                        matched += 1
                        assert gate(text), text
    assert matched >= 6 * sum(map(len, SPELLINGS.values()))  # the contexts did match: not vacuous
    rnd = random.Random(3)
    for t in CORPUS + ["".join(rnd.choice("telphonmbicsaxrgd: 0123456789+-") for _ in range(30)) for _ in range(5000)]:
        if context.search(t):
            assert gate(t), t
