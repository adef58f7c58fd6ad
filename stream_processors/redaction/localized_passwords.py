"""A password named in another language: ``mot de passe : X``, ``contraseña: X``, ``Passwort: X``,
``пароль: X``, ``密码：X``, ``パスワードは X``, ``hasło = X``.

The names are the shared table (schemas/attribute_keys.py ``PASSWORD_WORDS_BY_LANGUAGE``, spelled
out by ``keywords.LOCALIZED_SPELLINGS``): the same words make an attribute KEY a credential name,
so a secret under ``Passwort`` is judged alike as an attribute and in text. The ASCII assignment rule
cannot see these: its names are ASCII, its separators ``:``/``=``, and ``mot de passe`` holds spaces.

Structure, not a list of phrases:
- the word ends the name (a compound's head is last: ``DB-Passwort``, ``Datenbankpasswort``,
  ``数据库密码`` are passwords, ``Passwortlänge`` and ``密码长度`` are lengths); a post-modifier may
  follow as languages put it ("mot de passe administrateur", "contraseña de la base de datos");
- then a separator: ``:``, the full-width ``：``, ``=``, or the particle that means "is" where a
  language glues one (``是``, ``为``, ``は``, ``는``/``은``); spaces, no-break ones included, around it;
- then the value: quoted, or one token, cut where a CJK script resumes ("密码：Abc123，请…");
- a value that describes (``falsch``, ``incorrecta``, ``erforderlich``), a placeholder or a
  setting survives; after a name in a non-Latin script, a value with no ASCII letter or digit is
  a word of that language ("пароль: неверный"), not a password.
"""
from __future__ import annotations

import re
from typing import Iterator

from .keywords import ABOUT, LOCALIZED_SOURCE, SETTING_WORDS, placeholder

PREFILTER = (LOCALIZED_SOURCE,)

_BLANK = "[ \t\u00a0\u202f]"
# words that join a post-modifier to the name: "de la base", "do banco", "für den Server", "для входа"
_CONNECTORS = frozenset(("de", "del", "du", "des", "da", "do", "dos", "das", "della", "di", "für", "fur", "van",
                         "voor", "för", "dla", "для", "от", "za", "na", "pro", "per", "para", "pour", "of", "to",
                         "til", "på", "af"))
_NAME = re.compile(
    r"(?P<name>" + LOCALIZED_SOURCE + r")"
    r"(?P<mod>(?:[ \t]+[^\W\d_][\w.@'-]{0,39}){0,5}?)"
    + _BLANK + r"*(?P<sep>=>|[:=：]|是|为|為|は|는|은)" + _BLANK + "*")
_QUOTES = {'"': '"', "'": "'", "`": "`", "‘": "’", "“": "”", "„": "“", "«": "»", "「": "」"}
# a token: up to a blank, a quote, a separator of clauses, or the next run of CJK script
_VALUE = re.compile("[^\\s\"'`,;，。；、）)\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]{1,256}")
_ASCII_ALNUM = re.compile("[A-Za-z0-9]")


def _describes(v: str) -> bool:
    low = v.lower()
    return low in ABOUT or low in SETTING_WORDS or placeholder(v) or len(v) < 3 or v.isalpha() and len(v) < 4


def find_localized(text: str) -> Iterator[tuple[int, int]]:
    for m in _NAME.finditer(text):
        mod = m.group("mod").split()
        if mod and (len(mod) > 1 and mod[0].lower() not in _CONNECTORS or any(w.lower() in ABOUT for w in mod)):
            continue  # "Passwort wurde geändert: ok", "contraseña incorrecta: intente de nuevo"
        p = m.end()
        q = re.match(r"\\{0,3}([\"'`‘“„«「])", text[p:p + 5])
        if q is not None:
            close = text.find(_QUOTES[q.group(1)], p + q.end())
            if close > p + q.end() and close - p <= 260:
                s, e = p + q.end(), close
                while e > s and text[e - 1] == "\\":
                    e -= 1  # the close of an escaped quote (JSON in a string): \"X\"
                if not placeholder(text[s:e]):
                    yield s, e
            continue
        v = _VALUE.match(text, p)
        if v is None or _describes(v.group(0)):
            continue
        if m.group("name")[0] >= "\u0370" and not _ASCII_ALNUM.search(v.group(0)):
            continue  # after пароль, 密码, κωδικός: a word of that script describes the password
        yield v.span()
