"""Credentials that are not ``name=value``: in a command line, in a sentence, after a credential
word, and in connection-string fields whose values hold the separators the assignment rule stops at.

- command lines: ``-u user:pass`` (curl, wget), ``-U user%pass`` (smbclient), a password glued to
  ``-p`` of the MySQL tools, ``-p``/``-a``/``-P`` of tools where that flag IS the password (sshpass,
  ``docker login``, redis-cli, mongo, sqlcmd), ``-passin pass:X`` (openssl);
- prose: "the password is: correct horse battery staple", "my PIN is 4821", "password for the VPN
  was X", "login with password 'X'": the value runs to the end of the clause; a first word that
  describes the password instead ("is incorrect", "is too short", "was changed") turns it away;
- a random-looking value (entropy, letters and digits, ≥ 16 chars; 32/40-hex included) right after
  a credential word in prose: "auth token 9f8e…", "the api key is …", "session secret …";
- connection strings (``Password=Tr0ub4dor&3xyz;``, ``PWD={a;b}``): the value runs to the field's
  ``;`` (ODBC braces and quotes honoured), since ``&`` and ``%`` are ordinary password characters there.
"""
from __future__ import annotations

import re
from typing import Iterator

from agentstream.schemas.attribute_keys import KEY_QUALIFIERS
from agentstream.schemas.letter_pairs import random_letters

from .keywords import ABOUT, looks_random, placeholder

# Each branch names its tools: these flags mean a password only for them (``-p`` is a port, a
# path or a profile elsewhere), and the names give the byte prefilter literals to look for.
_HTTP_TOOLS = r"\b(?:curl|wget|lftp|svn)[ \t]"
_CLI = re.compile(
    "(?:" + _HTTP_TOOLS + r"[^\n|;&]{0,200}?(?<![\w-])(?:-u|--user|--proxy-user)[ \t]*=?[ \t]*['\"]?[^\s:'\"@/$]{1,64}:"
    r"(?P<up>[^\s'\"]{1,256})"
    r"|\b(?:smbclient|rpcclient|smbmap|smbget)[ \t][^\n|;&]{0,200}?(?<![\w-])-U[ \t]*['\"]?[^\s%'\"]{1,64}%"
    r"(?P<smb>[^\s'\"]{1,256})"
    r"|\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlsh|mariadb|mariadb-dump)[ \t][^\n|;&]{0,200}?"
    r"(?<![\w-])-p(?P<my>'[^'\n]{1,256}'|\"[^\"\n]{1,256}\"|[^\s'\"-][^\s'\"]{0,255})"
    r"|\b(?:sshpass|(?:docker|podman|buildah|skopeo|nerdctl|oras|helm)[ \t]+(?:registry[ \t]+)?login"
    r"|redis-cli|mongo|mongosh|mongodump|mongorestore|sqlcmd|bcp|htpasswd)[ \t][^\n|;&]{0,200}?"
    r"(?<![\w-])-(?:p|a|P|b[ \t]+\S+[ \t]+\S+)[ \t]+(?P<flag>'[^'\n]{1,256}'|\"[^\"\n]{1,256}\"|[^\s'\"-]\S{0,255})"
    r"|(?<![\w-])-pass(?:in|out)?[ \t]+pass:(?P<ossl>\S{1,256}))")
_CLI_GROUPS = ("up", "smb", "my", "flag", "ossl")
_VAR = re.compile(r"\$\{?\w+\}?|\$\(.*\)|%\w+%")  # "$DB_PASS", "${PW}", "$(cat f)", "%PASSWORD%"

# English, and the word for it in German, Spanish, French, Portuguese, Dutch, Swedish and Finnish
# (each holds an ASCII stem the byte prefilter knows: kennw, contrase, senha, pass…)
_PROSE = re.compile(
    r"(?i)\b(?:password|passphrase|passcode|passwd|pwd|pw|pin(?:[ \t]+code)?|passwort|kennwort|contrase[ñn]a"
    r"|senha|wachtwoord|l[öo]senord|salasana|mot[ \t]+de[ \t]+passe)"
    r"(?:[ \t]+(?:for|of|to|on|f[üu]r|de|del|para|pour|voor|do|da|f[öo]r)[ \t]+(?:[\w@.:/-]+[ \t]+){0,2}?[\w@.:/-]+)?"
    r"(?:[ \t]*(?P<conn>\b(?:is|was|ist|war|est|était|es|era|é|è|är|on|oli|lautet)\b|\bwill[ \t]+be\b|:|=)[ \t]*:?"
    r"|(?=[ \t]+[\"'`‘“„«]))[ \t]*")
_QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "‘": "’", "“": "”", "„": "“", "«": "»"}
# Word endings of participles and adjectives: "is expired", "is expiring", "is guessable".
_DESCRIBING_ENDINGS = ("ed", "ing", "able", "ible", "ful", "less", "ous", "ive")
_FUNCTION_WORDS = frozenset(("the", "a", "an", "to", "in", "of", "for", "be", "been", "is", "not", "and",
                             "at", "with", "by", "from", "on", "it", "that", "this", "than", "least", "must"))
_TRAIL = ".,;:!?)]}\"'`"  # punctuation that ends a value, not part of it ("if password is None:")
_CLAUSE_END = frozenset((".", ",", ";", "!", "?", ")", "]", "}"))
_STOP_WORDS = frozenset(("and", "but", "then", "so", "now", "which", "please", "for", "to", "because",
                         "until", "before", "after", "when", "while", "or", "if", "on", "in", "at"))

_CRED_WORD = re.compile(
    r"(?i)\b(?:(?:" + "|".join(sorted(KEY_QUALIFIERS - {"x"})) + r")[ _-]?key|apikey"
    r"|(?:auth|access|api|session|refresh|bot|personal access|bearer)?[ _-]?token|(?:client[ _-])?secret"
    r"|credentials?|password|passphrase|signature|pat)s?\b"
    r"(?:[ \t]*(?:\bis\b|\bwas\b|\bto\b|=|:|\bof\b))*[ \t]*[\"'`]?(?P<v>[A-Za-z0-9+/_=.~-]{16,512})")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

_CONN_FIELD = re.compile(
    r"(?i)(?:^|(?<=[;\"'\s]))(?:password|pwd|passwd|pass|user[ \t]+password|accountkey|sharedaccesskey"
    r"|client[ \t]+secret|secret)[ \t]*=[ \t]*"
    r"(?P<v>\{(?:[^}\n]|\}\})*\}|'(?:[^'\n]|'')*'|\"(?:[^\"\n]|\"\")*\""
    # a value runs to its field's ";" (spaces included only when that ";" comes), else to a space
    r"|[^;\s\"']+(?:[ \t]+[^;\s\"']+){0,6}(?=;(?:[ \t]*[A-Za-z][\w \t]{0,30}=|[ \t]*$))|[^;\s\"']+)",
    re.MULTILINE)

# Byte-prefilter trigger (ASCII, no lookarounds): every match above holds one of these tool names
# or a word the rules' TRIGGER_WORDS already hold (pass, pw, pin, key, token, secret, cred, pat…).
PREFILTER = (r"(?:curl|wget|lftp|svn|smbclient|rpcclient|smbmap|smbget|mysql|mysqldump|mysqladmin|mysqlimport"
             r"|mysqlsh|mariadb|mariadb-dump|sshpass|docker|podman|buildah|skopeo|nerdctl|oras|helm|redis-cli"
             r"|mongo|mongosh|mongodump|mongorestore|sqlcmd|bcp|htpasswd)[ \t]",)


def find_cli(text: str) -> Iterator[tuple[int, int]]:
    for m in _CLI.finditer(text):
        for g in _CLI_GROUPS:
            if m.group(g) is not None:
                v = m.group(g)
                s, e = m.span(g)
                if v[:1] in "'\"" and len(v) >= 2:
                    s, e, v = s + 1, e - 1, v[1:-1]
                if v and not placeholder(v) and not v.isdigit() and not _VAR.fullmatch(v):
                    yield s, e
                break


def _shape(w: str) -> str:
    return "lower" if w.islower() else "upper" if w.isupper() else "title" if w.istitle() else "mixed"


def _clause(text: str, pos: int) -> tuple[int, list[str]]:
    """The value at ``pos``: one token with digits, symbols or mixed case ("Tr0ub4dor&3xyz"), or a
    run of plain words of one case ("correct horse battery staple") to the end of the clause."""
    words: list[str] = []
    i, end, n = pos, pos, len(text)
    while i < n and len(words) < 8:
        j = i
        while j < n and not text[j].isspace():
            j += 1
        word = text[i:j]
        core = word.rstrip(_TRAIL) if words or not word.isalpha() else word
        if not words and (not core.isalpha() or _shape(core) == "mixed"):
            return i + len(word.rstrip(_TRAIL) or word), [word.rstrip(_TRAIL) or word]
        low = core.lower()
        if not core.isalpha() or words and (low in _STOP_WORDS or low in _FUNCTION_WORDS
                                            or _shape(core) != _shape(words[0])):
            break
        words.append(core)
        end = i + len(core)
        if core != word or j >= n or text[j] in "\r\n":
            break  # clause punctuation (or a line end) closes the value
        i = j
        while i < n and text[i] in " \t":
            i += 1
        if i == j:
            break
    return end, words


def find_prose(text: str) -> Iterator[tuple[int, int]]:
    for m in _PROSE.finditer(text):
        p = m.end()
        if p >= len(text):
            continue
        q = text[p]
        if q in _QUOTE_PAIRS:
            close = text.find(_QUOTE_PAIRS[q], p + 1)
            if close > p + 1 and close - p <= 257 and not placeholder(text[p + 1:close]):
                yield p + 1, close
            continue
        if m.group("conn") is None:
            continue  # "password reset link": only a quoted value may follow the bare word
        e, ws = _clause(text, p)
        if not ws or placeholder(ws[0]) or len(ws) == 1 and m.group("conn") in (":", "="):
            continue  # "password: X", "pin=X": one token after a colon is the assignment rule's
        low = [w.lower() for w in ws]
        if len(ws) == 1:
            w = ws[0]
            # one word: a password if it has a digit or symbol or mixed case (a PIN: 4+ digits), or
            # a plain word that does not describe ("the passphrase is tangerine", not "is expired");
            # a PIN is digits ("the pin is stuck" speaks of hardware)
            plain_ok = not m.group(0).lower().startswith("pin") and not low[0].endswith(_DESCRIBING_ENDINGS)
            if low[0] in ABOUT or low[0] in _FUNCTION_WORDS or len(w) < 4 or not (
                    not w.isalpha() or _shape(w) == "mixed" or len(w) >= 12 or plain_ok):
                continue
        elif low[0] in _FUNCTION_WORDS or low[0] in ABOUT and (
                len(ws) < 3 or any(w in ABOUT for w in low[1:])):
            continue  # "is too short", "was rotated last week"; not "correct horse battery staple"
        yield p, e


def find_after_credential_word(text: str) -> Iterator[tuple[int, int]]:
    for m in _CRED_WORD.finditer(text):
        v = m.group("v").rstrip(".")
        if _UUID.fullmatch(v) or placeholder(v) or not looks_random(v):
            continue
        if not any(c.isalpha() for c in v) or not any(c.isdigit() for c in v) and not random_letters(v):
            continue  # digit-free: only letters a machine drew, not "TokenRefreshHandler"
        yield m.start("v"), m.start("v") + len(v)


def find_conn_fields(text: str) -> Iterator[tuple[int, int]]:
    if ";" not in text and "{" not in text:
        return
    for m in _CONN_FIELD.finditer(text):
        s, e = m.span("v")
        v = m.group("v").strip()
        if v[:1] in "{'\"" and len(v) >= 2:
            s, e, v = s + 1, e - 1, v[1:-1]
        if v and not placeholder(v) and not (m.group(0)[:3].lower() == "pwd" and v[:1] in "/~"):
            yield s, e  # (the shell's PWD=/home/agent is a directory)
