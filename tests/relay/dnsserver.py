"""A real DNS server on 127.0.0.1 for relay tests, built on dnslib's server classes.

Zones are zone-file lines; names listed in ``servfail`` answer SERVFAIL, names
in ``drop`` get no answer (the client times out), names not in the zone answer
NXDOMAIN, (name, type) pairs in ``refuse`` answer REFUSED (a server that will
not answer AAAA, say). A name with a CNAME answers only the CNAME, as an authoritative
server for another zone would, so the client must follow it.
"""

from __future__ import annotations

import threading

from dnslib import QTYPE, RCODE, RR, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Dropped(Exception):
    """Raised inside the handler so that no reply is sent."""


class ZoneResolver(BaseResolver):
    def __init__(self, zone: str, servfail: set[str] | None = None, drop: set[str] | None = None,
                 refuse: set[tuple[str, str]] | None = None) -> None:
        self.lock = threading.Lock()
        self.refuse = {(DNSLabel(n), t) for n, t in refuse or ()}
        self.servfail = {DNSLabel(n) for n in servfail or ()}
        self.drop = {DNSLabel(n) for n in drop or ()}
        self.queries: list[tuple[str, str]] = []
        self.load(zone)

    def load(self, zone: str) -> None:
        with self.lock:
            self.records = RR.fromZone(zone)

    def resolve(self, request, handler):
        qname, qtype = request.q.qname, QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((str(qname).rstrip("."), qtype))
            records = [r for r in self.records if r.rname == qname]
        reply = request.reply()
        if qname in self.drop:
            raise Dropped(str(qname))
        if (qname, qtype) in self.refuse:
            reply.header.rcode = RCODE.REFUSED
        elif qname in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
        elif not records:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            cname = [r for r in records if QTYPE[r.rtype] == "CNAME"]
            for r in cname or [r for r in records if QTYPE[r.rtype] == qtype]:
                reply.add_answer(r)
        return reply


class QuietLogger(DNSLogger):
    def __init__(self) -> None:
        super().__init__("-request,-reply,-truncated,-error", prefix=False)

    def log_error(self, handler, e) -> None:  # dropped queries are on purpose
        pass


class TestDnsServer:
    __test__ = False

    def __init__(self, resolver: ZoneResolver) -> None:
        self.resolver = resolver
        self.server = DNSServer(resolver, address="127.0.0.1", port=0, logger=QuietLogger())
        self.server.server.handle_error = lambda *a: None   # Dropped: no reply, no traceback
        self.port = self.server.server.server_address[1]

    def __enter__(self) -> "TestDnsServer":
        self.server.start_thread()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()
        self.server.server.server_close()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"
