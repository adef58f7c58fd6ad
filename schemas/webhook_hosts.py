"""Which hosts an alert destination may name: public ones, unless an operator allows more.

A tenant's routing rule makes the forwarder POST to the URL it names, from inside the
deployment: ``http://169.254.169.254/…`` (a cloud's metadata service) or
``http://127.0.0.1:18000/…`` (a port of the stack itself) would turn the forwarder into the
tenant's proxy to internal hosts (SSRF). So a destination naming loopback, link-local, private
(RFC 1918, unique local), shared (CGNAT), multicast, reserved or unspecified addresses, as an IP
literal or as ``localhost``, is refused when the routing is saved (the API), and the forwarder
resolves the host again before each post and refuses it when any address is one of those, so a
public name later pointed at an internal address (DNS rebinding) is refused too.

``allowed`` is the operator's exception (hosts or CIDR networks, e.g. ``127.0.0.1`` for the
embedded demo's fake receivers), read from the settings built at each entry point.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Callable, Iterable
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[str]]


def _internal(ip: Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return (ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_multicast
            or ip.is_unspecified or ip.is_reserved or not ip.is_global)


def _allows(allowed: Iterable[str], host: str, ip: Address | None) -> bool:
    for entry in allowed:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host:
            return True
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue  # a host name entry, compared above
    return False


def url_host(url: str) -> str:
    """The URL's host, lower case, without brackets or a trailing dot ('' if none)."""
    try:
        return (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:  # an invalid IPv6 literal, a bad port
        return ""


def _literal(host: str) -> Address | None:
    """The address a host written as an IP literal stands for: also the legacy forms resolvers
    still take (127.1, 2130706433, 0x7f.0.0.1), which ``ipaddress`` refuses but a post reaches."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def host_problem(url: str, allowed: Iterable[str] = ()) -> str | None:
    """Why ``url`` may not be a destination judged from its text alone, or None."""
    host = url_host(url)
    if not host:
        return "destination url has no host"
    allowed = tuple(allowed)
    if host == "localhost" or host.endswith(".localhost"):
        return None if _allows(allowed, host, None) else "destination url names localhost"
    ip = _literal(host)
    if ip is None:
        return None  # a name: judged by what it resolves to, when the forwarder posts
    if _internal(ip) and not _allows(allowed, host, ip):
        return f"destination url names an internal address ({host}); an operator may allow it"
    return None


def _resolve(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]


def resolved_problem(url: str, allowed: Iterable[str] = (), resolve: Resolver = _resolve) -> str | None:
    """``host_problem``, then each address the host resolves to now (None when all are public).
    A name that does not resolve is left to the post itself, which fails and is retried."""
    allowed = tuple(allowed)
    problem = host_problem(url, allowed)
    if problem is not None:
        return problem
    host = url_host(url)
    if _allows(allowed, host, None):
        return None
    if _literal(host) is not None:
        return None  # a literal host_problem passed
    try:
        addresses = resolve(host)
    except OSError:
        return None
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.split("%")[0])  # fe80::1%eth0
        except ValueError:
            continue
        if _internal(ip) and not _allows(allowed, host, ip):
            return f"destination host {host} resolves to an internal address ({ip}); an operator may allow it"
    return None
