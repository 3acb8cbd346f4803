"""Who a request comes from: a web page's origin, and the host name it was sent to.

A page on any site a viewer visits can make the browser send requests to a machine on the
viewer's network, and DNS rebinding can point the page's own name at the worker or the
orchestrator, after which the browser treats them as that page's site: it names the page's
domain in both ``Host`` and ``Origin``, and lets the page read the answers. So neither header is
ever compared with the other: ``Origin`` is compared with the service's configured public URL,
and ``Host`` with the names the service is known by. Pure functions, but for ``machine_names``.
"""
import ipaddress
import socket
from functools import lru_cache
from urllib.parse import urlsplit

import psutil

SAFE_METHODS = frozenset(("GET", "HEAD"))  # no other method may come from a foreign page
DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_NAMES = frozenset(("localhost", "127.0.0.1", "::1"))
WILDCARD_HOSTS = frozenset(("0.0.0.0", "::", ""))


def origin_of(url):
    """(scheme, host, port) of a URL or of an Origin header's value; None for "null" or a value
    that is no origin."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:  # a port out of range, a malformed IPv6 literal
        return None
    if not parts.scheme or not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname.lower().rstrip("."), port


def foreign_origin(method, origin, own_origins):
    """True when a request by `method` with the Origin header `origin` (None: none sent) comes
    from a web page of another origin than `own_origins` (a URL, or a collection of
    (scheme, host, port)) and may change state."""
    if method in SAFE_METHODS or origin is None:
        return False
    if isinstance(own_origins, str):
        own_origins = {origin_of(own_origins)}
    page = origin_of(origin)
    return page is None or page not in own_origins


def host_of(host_header):
    """The name or address of a Host header's value, lowercase, without port, brackets or a final
    dot; None for a value that is no host."""
    try:
        host = urlsplit(f"//{host_header.strip()}").hostname
    except ValueError:
        return None
    return host.rstrip(".") if host else None


def is_address(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def foreign_host(host_header, own_names):
    """True when a request's Host header names none of `own_names` (lowercase host names).

    An IP address is never foreign: DNS rebinding needs a name the attacker's DNS answers for,
    and a browser sends an address as Host only for a page it loaded from that address, that is
    from this service (directly, or through the NAT or proxy that carried the request here)."""
    host = host_of(host_header or "")
    if host is None:
        return True
    return not is_address(host) and host not in own_names


def listen_origins(listen_host, port, names):
    """The origins a service bound to `listen_host`:`port` is reached at over plain HTTP: that
    host's, or, bound to every interface (0.0.0.0, ::), each of `names`'."""
    hosts = names if listen_host in WILDCARD_HOSTS else {listen_host.strip("[]").lower()}
    return frozenset(("http", host, port) for host in hosts)


@lru_cache(maxsize=1)
def machine_names():
    """This machine's names and addresses, lowercase: the loopback ones, its host name and fully
    qualified name, and the addresses of its network interfaces. Looked up once (the FQDN may
    ask DNS)."""
    names = set(LOOPBACK_NAMES)
    hostname = socket.gethostname()
    names.update(n.lower().rstrip(".") for n in (hostname, socket.getfqdn(hostname)) if n)
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                names.add(address.address.split("%")[0].lower())  # fe80::1%eth0: the zone is no part of a Host
    return frozenset(names)
