"""Attacks on the rules by how a text is typeset, written before the defence (folding.py): the
seeded generator's planted values wrapped in ANSI colour codes, glued to CJK, Cyrillic or Thai
words, with invisible characters (zero-width, word joiner, BOM, soft hyphen, bidi marks, C0
controls, combining marks) inserted inside them, or written in fullwidth forms. Each one a red-team
pass stored as sent. And ids that are a card number, an IBAN or a national id, which were passed
by format."""
from __future__ import annotations

import random
import re

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.redaction import DEFAULT_ACTIONS
from agentstream.stream_processors.redaction.folding import folded

from .redaction_benches import REDACTOR as R, engine_changes, load_bench, record_fires, redact

gen = load_bench("redaction_corpus")
codec = Codec()

NEIGHBOURS = ("密钥是", "令牌", "账户", "パスワードは", "トークン", "비밀번호는", "ключ", "รหัส", "键：", "Ωμέγα")
HIDDEN = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u202c", "\x01", "\x7f",
          "\u0301", "\u034f")
ANSI = ("\x1b[31m", "\x1b[1;33m", "\x1b[38;5;208m", "\x1b[0m", "\x1b[2K", "\x1b]0;title\x07")


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in s)


def _wrap(r: random.Random, text: str, value: str) -> tuple[str, str]:
    """(how it is typeset, the wrapping's name): ``value`` stands inside ``text``."""
    how = r.choice(("ansi", "neighbour", "hidden", "fullwidth"))
    if how == "ansi":
        return f"error: {r.choice(ANSI)}{text}{r.choice(ANSI)} exit 1", how
    if how == "neighbour":
        return r.choice(NEIGHBOURS) + text + r.choice(NEIGHBOURS), how
    if how == "hidden":
        at = text.index(value) + r.randint(1, max(1, len(value) - 2))
        return text[:at] + r.choice(HIDDEN) + text[at:], how
    return _fullwidth(text), how


def _plain(p) -> str:
    return p.value if p.key is None else f"{p.key}: {p.value}" if " " in p.key else f"{p.key}={p.value}"


def _alnum(s: str) -> str:
    view = folded(s)
    return re.sub(r"[^A-Za-z0-9]", "", view[0] if view else s)


def _leaks(out: str, value: str) -> bool:
    """Whether ``out`` still holds a run of the value's letters and digits (ten, or the whole of a
    shorter value), read as a terminal shows it."""
    s, o = _alnum(value), _alnum(out)
    n = min(10, len(s))
    return any(s[i:i + n] in o for i in range(len(s) - n + 1))


def _cases(n: int, seed: int) -> list[tuple[str, str, str]]:
    r = random.Random(seed)
    out = []
    while len(out) < n:
        p = gen.plant(r)
        plain = _plain(p)
        if _leaks(redact(plain), p.value):
            continue  # the plain form is the generator's recall, measured elsewhere
        text, how = _wrap(r, plain, p.value)
        out.append((text, p.value, how))
    return out


CASES = _cases(1200, seed=20261207)


def test_every_way_of_typesetting_is_generated():
    assert {how for _, _, how in CASES} == {"ansi", "neighbour", "hidden", "fullwidth"}


def test_a_value_the_rules_find_plain_is_found_however_it_is_typeset():
    missed = [(how, text) for text, value, how in CASES if _leaks(redact(text), value)]
    assert not missed, missed[:10]


def test_the_hot_path_sends_every_typeset_value_to_the_engine():
    for text, _value, how in CASES[:400]:
        ev = syn.step("t", "run-1", 2, name="tool", args_digest="d", attributes={"note": text[:200]})
        if engine_changes(ev):
            assert record_fires(codec.encode(EVENT, ev)), (how, text)
        failing = syn.step("t", "run-1", 3, name=text[:120], args_digest="d")
        if engine_changes(failing):
            assert record_fires(codec.encode(EVENT, failing)), (how, text)


def test_the_redaction_lands_where_the_value_stood():
    out = redact("\x1b[31mghp_" + "a1B2" * 9 + "\x1b[0m done")
    assert out == "\x1b[31m[REDACTED:api_key]\x1b[0m done"
    out = redact("令牌gh\u200bp_" + "a1B2" * 9 + "，好")
    assert out == "令牌[REDACTED:api_key]，好"


@pytest.mark.parametrize("text", ["Schöne Grüße aus München", "東京都渋谷区 1-2-3", "\x1b[32mOK\x1b[0m 12 tests passed",
                                  "ｈｅｌｌｏ　ｗｏｒｌｄ", "naïve café", "v1.2.3-rc\u200b1", "価格は 4,800 円です"])
def test_ordinary_text_so_typeset_is_left_alone(text):
    assert redact(text) == text


@pytest.mark.parametrize("field", ["session_id", "parent_run_id", "parent_step_id"])
@pytest.mark.parametrize("value", ["4232-8280-1407-2785", "card:5500.0055.5555.5559", "ssn:219-09-3420",
                                   "GB82WEST12345698765432", "nino:AB123456C", "3782-822463-10005"])
def test_an_envelope_id_that_is_a_card_an_iban_or_a_national_id_is_pseudonymised(field, value):
    ev = syn.step("t", "run-1", 2, name="tool", args_digest="d")
    ev[field] = value
    out = R.redact_event(ev, DEFAULT_ACTIONS, "p1")
    assert value not in str(out) and ":hmac:" in out[field]
    assert record_fires(codec.encode(EVENT, ev))


@pytest.mark.parametrize("value", ["4111 1111 1111 1111", "4111-1111-1111-1111", "ssn:219-09-3420"])
def test_a_run_id_that_is_a_card_or_an_ssn_quarantines_the_event(value):
    ev = syn.step("t", value, 2, name="tool", args_digest="d")
    with pytest.raises(Exception, match="identifier field run_id"):
        R.redact_event(ev, DEFAULT_ACTIONS, "p1")


def test_ids_of_random_counter_and_hex_shapes_pass_as_they_are():
    # a bare digit run too, Luhn-valid with a card prefix or not: most such ids are not cards
    # (test_redaction_fields.py replays more styles through the stage)
    r = random.Random(7)
    ids = ([f"run_{r.getrandbits(64):016x}" for _ in range(300)] + [f"ord-{r.randrange(10**15, 10**16)}-3" for _ in range(300)]
           + [str(r.randrange(10**15, 2 * 10**18)) for _ in range(300)] + [f"sess-{r.randrange(10**6)}" for _ in range(300)]
           + [f"{r.getrandbits(128):032x}" for _ in range(300)])
    flagged = [i for i in ids if R.check_id(i) is not None]
    assert not flagged, flagged[:10]


def test_a_call_id_nested_in_a_payload_that_is_a_card_is_redacted():
    ev = syn.step("t", "run-1", 2, name="tool", args_digest="d")
    ev["payload"]["tool"]["call_id"] = "4232-8280-1407-2785"
    out = R.redact_event(ev, DEFAULT_ACTIONS, "p1")
    assert "4232" not in str(out["payload"])
    assert record_fires(codec.encode(EVENT, ev))
