"""Where webhooks may be sent: public addresses only, unless the server allows private ones.

Anyone who can create a project can create a hook on it, and the delivery log shows how each
attempt went. A hook aimed at the server's own network (loopback, a private range, the cloud
metadata service at 169.254.169.254) would turn the delivery worker into a port scanner
inside it. So, by default, a hook's host must resolve to public addresses only: this is
checked when the hook is created (`check_new_target`, a clear 400) and again at every
delivery (`resolve_target`), where the addresses checked are the very ones the worker then
connects to, so a name cannot pass the check and then resolve elsewhere (DNS rebinding).

Every spelling of an address is caught the way the operating system would read it: IPv4 in
decimal, octal or hex (`2130706433`, `0177.0.0.1`, `0x7f.1`), IPv4 inside IPv6 (mapped,
6to4, Teredo, NAT64), `localhost` and its subdomains, and names that resolve to any of them.
An on-premises receiver needs `registrum server --allow-private-webhooks`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from registrum.errors import InvalidArgument

ALLOW_OPTION = "--allow-private-webhooks"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# NAT64 gateways (RFC 6052) reach the IPv4 address in the last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
# One part of an IPv4 address as inet_aton reads it: hex, octal or decimal.
_INET_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*", re.ASCII)


class TargetRefused(InvalidArgument):
    """A webhook target is not a public address and private targets are not allowed."""


class TargetUnresolved(Exception):
    """A webhook's host name does not resolve (at delivery: this attempt fails)."""


@dataclass(frozen=True)
class Target:
    """Where one delivery goes: the URL's parts and the checked addresses to connect to."""

    scheme: str
    host: str  # as the URL names it: sent as Host and, over https, as the TLS server name
    port: int
    addresses: tuple[str, ...]


def url_host(url: str) -> tuple[str, str, int]:
    """The scheme, host (brackets stripped, lower case) and port of a checked webhook URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if not host.isascii():
        # As resolvers, Host headers and TLS server names want it (bücher.example ->
        # xn--bcher-kva.example); a name that cannot be encoded fails to resolve.
        with contextlib.suppress(UnicodeError):
            host = host.encode("idna").decode("ascii")
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, host, port


def classify(address: IPAddress) -> str | None:
    """What kind of non-public address `address` is ("loopback", "private", ...), or None
    for a public one. An IPv4 address carried inside IPv6 is judged as that IPv4 address
    too: the packets end up there."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            inner_kind = classify(address.ipv4_mapped)
            return None if inner_kind is None else f"{inner_kind} (IPv4-mapped)"
        inner = _embedded_ipv4(address)
        if inner is not None:
            inner_kind = classify(inner)
            if inner_kind is not None:
                return f"{inner_kind} (IPv4 {inner} inside IPv6)"
    # The most telling name first: 127.0.0.1 is also "private" to ipaddress.
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    )
    for kind, hit in checks:
        if hit:
            return kind
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "shared (carrier-grade NAT)"
    if not address.is_global:
        return "non-public"
    return None


def parse_ip(host: str) -> IPAddress | None:
    """The address `host` spells, or None for a name. IPv4 is read as inet_aton reads it,
    so `2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` all mean 127.0.0.1."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART.fullmatch(p) for p in parts):
        return None
    numbers = [
        int(p[2:] or "0", 16) if p[:2].lower() == "0x" else int(p, 8 if p[0] == "0" else 10)
        for p in parts
    ]
    # a.b.c.d; a.b.c16; a.b24; a32: the last part fills the remaining bytes.
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = last
    for i, n in enumerate(leading):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def check_new_target(url: str, *, allow_private: bool) -> None:
    """Raises TargetRefused when the host of `url` (an already valid webhook URL) is or
    resolves to a non-public address and `allow_private` is off.

    A name that does not resolve yet is accepted: it is checked again at every delivery.
    """
    if allow_private:
        return
    _, host, port = url_host(url)
    refusal = _refusal(host, _literal_or_resolved(host, port, creating=True))
    if refusal is not None:
        raise TargetRefused(f"webhook url {url!r} is refused: {refusal}", url=url)


def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Resolves the host of `url` once and checks every address it resolves to.

    Raises TargetRefused when one of them is not public (unless `allow_private`), and
    TargetUnresolved when the name does not resolve. The delivery connects only to the
    returned addresses.
    """
    scheme, host, port = url_host(url)
    addresses = _literal_or_resolved(host, port, creating=False)
    if not allow_private:
        refusal = _refusal(host, addresses)
        if refusal is not None:
            raise TargetRefused(f"refused: {refusal}", url=url)
    return Target(scheme, host, port, tuple(str(a) for a in addresses))


def _refusal(host: str, addresses: list[IPAddress]) -> str | None:
    """Why `host`, with the addresses it is or resolves to, may not be a target, or None."""
    advice = (
        "; webhooks go only to public addresses unless the server runs with "
        f"{ALLOW_OPTION} (for receivers on your own network)"
    )
    name = host.lower()
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is this machine, a loopback address{advice}"
    literal = parse_ip(host) is not None
    for address in addresses:
        kind = classify(address)
        if kind is None:
            continue
        shown = _show(address)
        if not literal:
            return f"{host} resolves to {shown}, a {kind} address{advice}"
        if shown == host:
            return f"{shown} is a {kind} address{advice}"
        return f"{host} is {shown}, a {kind} address{advice}"
    return None


def _show(address: IPAddress) -> str:
    """`address` as people write it: an IPv4-mapped one as `::ffff:127.0.0.1`."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _literal_or_resolved(host: str, port: int, *, creating: bool) -> list[IPAddress]:
    literal = parse_ip(host)
    if literal is not None:
        return [literal]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        if creating:
            return []
        raise TargetUnresolved(f"cannot resolve {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for family, *_, sockaddr in found:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses and not creating:
        raise TargetUnresolved(f"cannot resolve {host}: no IPv4 or IPv6 address")
    return addresses


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address: the far end of the tunnel
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
