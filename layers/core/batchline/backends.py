"""Which model backends a job may name: its base URL and its API key's secret (checked at create and at send).

The worker calls `provider.base_url` from inside the stack's network with the stack's role, so a URL that
points at the instance metadata service or another link-local address would hand an admin-typed string the
role's credentials; loopback and private ranges reach whatever the stack's network reaches, allowed only
when the stack says its backends are private. Host names are not looked up (no DNS at create): a name is
refused only when it is a metadata name or `localhost`; an address written as a literal is checked as one,
in every spelling the HTTP client would accept for it.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Metadata services, whatever range holds them (fd00:ec2::254 is in fc00::/7, which private backends allow).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)


def _literal_address(host: str) -> IPAddress | None:
    """The address a host written as an IP literal stands for, including IPv4's short forms (127.1, 2130706433)."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # an IPv6 zone (fe80::1%eth0) is still that address
    except ValueError:
        if not host or not all(c in "0123456789abcdefx." for c in host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))  # what the resolver does with 0x7f.1, no DNS
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def base_url_problem(base_url: str, *, allow_private: bool) -> str | None:
    """Why a job may not call `base_url`, or None when it may."""
    try:
        parts = urlsplit(base_url)
        host = (parts.hostname or "").rstrip(".")
        parts.port  # noqa: B018  # a port that is not a number raises here
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if not host:
        return "must name a host"
    if host in METADATA_NAMES:
        return "must not be a metadata service"
    address = _literal_address(host)
    if address is None:
        if host == "localhost" or host.endswith(".localhost"):
            return None if allow_private else "must not be a loopback address unless the stack allows private backends"
        return None
    if address in METADATA_ADDRESSES:
        return "must not be a metadata service"
    if address.is_link_local:
        return "must not be a link-local address"
    private = address.is_loopback or address.is_unspecified or address.is_private
    if address.is_multicast or (address.is_reserved and not private):
        return "must be a unicast address"
    if (private or not address.is_global) and not allow_private:
        return "must not be a loopback or private address unless the stack allows private backends"
    return None


def secret_problem(secret_name: str, *, prefix: str) -> str | None:
    """Why a job may not use this secret as its API key, or None: the worker may read only the stack's own."""
    if not secret_name.startswith(prefix) or secret_name == prefix:
        return f"must be a Secrets Manager name that starts with '{prefix}'"
    return None
