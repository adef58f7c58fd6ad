"""Credentials in the files made to hold them, printed whole by an agent's ``cat``: ``.netrc`` /
``_netrc``, ``.pgpass``, PuTTY private keys (``.ppk``) and YAML block scalars under a credential
name. Their syntax is none of the assignments the key-aware rule reads (``password X`` with a
blank, five colon-separated fields, a key spread over lines), so each is read by its own grammar.

A file reaches the rules as it was carried: its lines broken by LF or CRLF or, inside a JSON
string, by the two-character escapes ``\\n`` and ``\\r\\n``. Each grammar takes any of them.

- netrc: ``machine <host>`` (or ``default``) then keyword/value pairs in any order and layout
  (``login``, ``password``, ``account``, ``port``); a password's value, quoted or not, and a login
  that is a token (GitHub's convention: the token is the login, ``x-oauth-basic`` the password);
- pgpass: ``host:port:database:user:password`` as a whole line, the port a number or ``*``; a
  single-word host (``session:4821:cart:item:3`` is a cache key) needs a service port and a
  password-like value, and a log level in the user field (``app.py:42:main:ERROR:timeout``) is a log;
- PuTTY: the ``Private-Lines: N`` block and its MAC (the public lines are public);
- YAML: ``<name>: |`` (or ``>``, ``|-``, ``>+``, ``|2``…) and the lines indented under it, when the
  name is a credential's by the shared vocabulary (``attribute_keys.classify``): any value under a
  password/secret/token name, a random-looking one under a key-material name.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from typing import Iterator

from agentstream.schemas.attribute_keys import classify

from .keywords import looks_random, placeholder

_NL = r"(?:\r\n|\n|\r|\\r\\n|\\n)"  # a line break, or its escape inside a JSON string
_BREAK = re.compile(_NL)
_WS = r"(?:[ \t\r\n]|\\[nrt])+"

# ---- netrc ----------------------------------------------------------------------------------
_TOKEN = r"(?:\\{0,2}\"[^\"\n]{1,256}?\\{0,2}\"|'[^'\n]{1,256}'|[^\s\"'\\](?:[^\s\\]|\\[^nrt\"\s]){0,255})"
_NETRC = re.compile(rf"(?<![\w.-])(?:machine{_WS}{_TOKEN}|default)"
                    rf"(?P<pairs>(?:{_WS}(?:login|password|passwd|account|port){_WS}{_TOKEN})+)")
_PAIR = re.compile(rf"{_WS}(?P<k>login|password|passwd|account|port){_WS}(?:\\{{0,2}}\"(?P<dq>[^\"\n]{{1,256}}?)\\{{0,2}}\""
                   r"|'(?P<sq>[^'\n]{1,256})'|(?P<v>[^\s\"'\\](?:[^\s\\]|\\[^nrt\"\s]){0,255}))")


def find_netrc(text: str) -> Iterator[tuple[int, int]]:
    if "machine" not in text and "default" not in text:
        return
    for m in _NETRC.finditer(text):
        for p in _PAIR.finditer(text, m.start("pairs"), m.end("pairs")):
            g = "dq" if p.group("dq") is not None else "sq" if p.group("sq") is not None else "v"
            value = p.group(g)
            if placeholder(value):
                continue
            if p.group("k") in ("password", "passwd") or p.group("k") == "login" and len(value) >= 20 \
                    and looks_random(value):
                yield p.span(g)


# ---- pgpass ---------------------------------------------------------------------------------
_FIELD = r"(?:[^\s:\\\"'`]|\\[:\\])+"
PGPASS_PREFILTER = rf":(?:[0-9]{{1,5}}|\*):{_FIELD}:{_FIELD}:"
_PGPASS = re.compile(
    r"(?:^|(?<=[\s\"'`>])|(?<=\\n))(?P<host>\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})"
    rf":(?P<port>[0-9]{{1,5}}|\*):(?P<db>{_FIELD}):(?P<user>{_FIELD}):(?P<pw>{_FIELD})(?=$|[\s\"'`]|\\[nr])",
    re.MULTILINE)
_PORT_FIELD = re.compile(r":(?:[0-9]{1,5}|\*):")
_LOG_LEVELS = frozenset(("debug", "info", "notice", "warn", "warning", "error", "err", "critical", "crit",
                         "fatal", "trace", "alert", "emerg"))
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_SHORT_HEX = re.compile(r"[0-9A-Fa-f]{1,4}")


def find_pgpass(text: str) -> Iterator[tuple[int, int]]:
    if _PORT_FIELD.search(text) is None:  # the costly search tries a host at every blank
        return
    for m in _PGPASS.finditer(text):
        host, port, pw = m.group("host"), m.group("port"), m.group("pw")
        fields = (host, port, m.group("db"), m.group("user"), pw)
        if port != "*" and int(port) > 65535 or host.isdigit() or placeholder(pw) \
                or m.group("user").lower() in _LOG_LEVELS or m.group("db").lower() in _LOG_LEVELS \
                or all(_SHORT_HEX.fullmatch(f) for f in fields):  # an IPv6 address, not five fields
            continue
        named = host in ("*", "localhost") or host.startswith("[") or _IPV4.fullmatch(host) or (
            "." in host and any(c.isalpha() for c in host.rsplit(".", 1)[1]))
        if not named and not ((port == "*" or int(port) >= 1024) and len(pw) >= 6
                              and (not pw.isalpha() or not (pw.islower() or pw.isupper()))):
            continue  # a single word, then digits: a cache key (user:1000:profile:name:first)
        yield m.span("pw")


# ---- PuTTY ----------------------------------------------------------------------------------
# a whole line ("Private-MAC:" is not one), a blank allowed before its break (escapes.unglued)
_B64_LINE = r"[A-Za-z0-9+/=]{1,128}[ \t]*(?=[\r\n]|\\[rn]|$)"
_PUTTY = re.compile(rf"Private-Lines:[ \t]*[0-9]{{1,4}}[ \t]*{_NL}(?P<body>{_B64_LINE}(?:{_NL}{_B64_LINE})*)"
                    rf"(?:{_NL}Private-(?:MAC|Hash):[ \t]*[0-9A-Fa-f]{{16,128}})?")


def find_putty(text: str) -> Iterator[tuple[int, int]]:
    for m in _PUTTY.finditer(text):
        yield m.start("body"), m.end()


# ---- YAML block scalars ---------------------------------------------------------------------
_BLOCK = re.compile(r":[ \t]+[|>]")
_HEAD = re.compile(r"(?P<indent>[ \t]*)(?:-[ \t]+)?(?P<q>[\"']?)(?P<key>[^\s:\"'#-][^:\"'\r\n]{0,80}?)(?P=q)"
                   r"[ \t]*:[ \t]+[|>](?:[+-]?[1-9]?|[1-9][+-])[ \t]*(?:#.*)?")


def _lines(text: str) -> list[tuple[int, int]]:
    out, at = [], 0
    for b in _BREAK.finditer(text):
        out.append((at, b.start()))
        at = b.end()
    out.append((at, len(text)))
    return out


def find_yaml_blocks(text: str) -> Iterator[tuple[int, int]]:
    if _BLOCK.search(text) is None:
        return
    lines = _lines(text)
    # only lines holding an indicator can open a block (a 256 KiB text has thousands of lines)
    heads = {bisect_right(lines, (m.start(), len(text))) - 1 for m in _BLOCK.finditer(text)}
    i = 0
    while i < len(lines):
        h = _HEAD.fullmatch(text, *lines[i]) if i in heads else None
        kind = classify(h.group("key")) if h is not None else None
        i += 1
        if h is None or kind not in ("strong", "key", "material"):
            continue
        depth, body = len(h.group("indent")), []
        while i < len(lines):
            s, e = lines[i]
            line = text[s:e]
            lead = len(line) - len(line.lstrip(" \t"))
            if line.strip():
                if lead <= depth:
                    break  # the next key (or the end of the block): back at the name's depth
                body.append((s + lead, e))
            i += 1  # blank lines inside the block belong to it
        if not body:
            continue
        first = text[body[0][0]:body[0][1]].strip()
        joined = "".join(text[s:e].strip() for s, e in body)
        if placeholder(first) or kind != "strong" and not looks_random(joined):
            continue
        yield body[0][0], body[-1][1]


def find_credential_files(text: str) -> Iterator[tuple[int, int]]:
    yield from find_netrc(text)
    yield from find_pgpass(text)
    yield from find_yaml_blocks(text)
