#!/usr/bin/env python3
"""Generate the stateful-firewall replay fixtures (Tests/TapestryReplayTests/Scenarios/fw-*/).

Like scripts/gen_replay_fixtures.py (whose VLAN classification, L2 `Switch`, pcap
writer and frame helpers are imported, not copied), this is an independent oracle:
it re-implements the firewall semantics in plain Python, from the raw bytes of each
frame, and writes the expected outputs of every scenario in the same folder format:

    topology.yaml (with a `firewall:` section), in/<PORT>.pcap, expect/<PORT>.pcap
    (every port), expect/summary.json ({"drops": {reason: count}}, nonzero only),
    README.md (one line).

Pipeline order modelled: VLAN classification -> firewall -> L2 learning/forwarding.
A frame the firewall drops is never learned by L2.

Firewall model (what the expected outputs encode):
- IPv4/IPv6 only; non-IP frames pass. ICMPv6 130-137 and 143 (MLD, RS/RA/NS/NA/redirect)
  pass untracked. IPv6 extension headers are not walked (none are used here).
- Flow = (proto, src, sport, dst, dport); TCP/UDP ports; ICMP(v6) echo uses the identifier as
  both ports; anything else 0,0. A connection is found in both directions, per network.
- Unknown flow: TCP that is not a pure SYN -> `invalid`; echo reply -> `invalid`; otherwise the
  rules (first match; else `default`): drop -> `firewall`; allow -> tracked (room permitting).
- TCP state machine and the timeouts as in the team contract brief (see tcp_step below); a
  connection whose last-seen time is >= its state's timeout before the packet is gone.
- ICMP errors pass only when their quoted packet belongs to a live connection (either
  direction), without refreshing it; otherwise `invalid`.
- Fragments (IPv4, and IPv6 with the fragment header right after the fixed header), per
  datagram (network, src, dst, proto, id; direction matters), see `Datagram` below: a datagram
  is remembered 30 s from its first fragment seen; once every byte of it passed, a later
  fragment of it is `invalid` (a repeat or an overlap) and a first fragment starts a new
  datagram with the id. Its pieces are byte ranges: a
  fragment repeating one exactly is `invalid` alone; one overlapping another, reaching past the
  last fragment's end, or a second last fragment with another end breaks the datagram: it and
  everything held or still to come are `invalid`. An impossible fragment (no payload, past
  65,535 bytes with the header, not last and not a multiple of 8) is `invalid` and changes
  nothing. A first fragment is otherwise an ordinary packet; passing, it lets the datagram's
  held fragments go right after it (same time, arrival order, not learned again); refused, they
  and later ones are `invalid`. A later fragment of a passing datagram passes; before its first
  fragment it is held (its source MAC learned on arrival); held when the datagram is forgotten
  or when the capture ends: `invalid`.
- TCP sequence windows (RFC 793 acceptability as Linux's tcp_in_window bounds it; RFC 7323
  scaling; RFC 5961 RSTs and challenge ACKs), see `Window` below: a segment the state machine
  accepts must also lie in the window, else `invalid` with nothing changed.
- max_connections: the least recently seen unreplied connection (TCP SYN_SENT, or a non-TCP
  flow that never saw a reply) is evicted to make room, else the new one is `table-full`.

Deterministic: fixed timestamps, fixed ISNs/ids, no randomness. Run from anywhere.
"""

import ipaddress
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_replay_fixtures as l2  # noqa: E402  (the L2 oracle: classify, Switch, write_pcap)

from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    IPv6ExtHdrFragment, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import ARP, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

US = 1_000_000

DEFAULT_TIMEOUTS = {
    "tcp_syn_sent": 120, "tcp_syn_recv": 60, "tcp_established": 432000, "tcp_fin_wait": 120,
    "tcp_close_wait": 60, "tcp_last_ack": 30, "tcp_time_wait": 120, "tcp_close": 10,
    "udp": 30, "udp_stream": 120, "icmp": 30,
}
FRAGMENT_MEMORY_US = 30 * US

PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
TCP_P, UDP_P, ICMP_P, ICMP6_P = 6, 17, 1, 58
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
# FIN|SYN|RST|ACK|URG combinations a TCP sends (Linux's tcp_valid_flags); others are invalid.
VALID_FLAGS = {0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30}

ICMP4_ERRORS = {3, 4, 5, 11, 12}
ICMP6_ERRORS = {1, 2, 3, 4}
ICMP6_UNTRACKED = set(range(130, 138)) | {143}
ECHO_REQ = {ICMP_P: 8, ICMP6_P: 128}
ECHO_REP = {ICMP_P: 0, ICMP6_P: 129}


# --------------------------------------------------------------------------
# Packet parsing (from raw bytes, independent of scapy)
# --------------------------------------------------------------------------

class Pkt:
    """The fields of one IP packet the firewall looks at."""
    proto = sport = dport = flags = itype = None
    seq = ack = window = 0
    payload = 0
    wscale = None       # the window-scale option's shift, on a SYN
    inner = None        # bytes of the quoted packet for an ICMP error
    ident = 0
    mf = False
    frag_off = 0
    fragmented = False
    frag_len = 0        # the fragment's payload bytes (after the IPv4 header or the fragment header)
    frag_hdr = 0        # bytes of the reassembled datagram besides the payloads (IPv4's header)
    malformed = False   # a first fragment too short for its L4 header (the parser drops it)


def u16(b, i):
    return struct.unpack("!H", b[i:i + 2])[0]


def parse_ip(p):
    """p: an IPv4 or IPv6 packet (possibly truncated, as quoted in ICMP errors). None if not IP."""
    if len(p) < 1:
        return None
    pkt = Pkt()
    version = p[0] >> 4
    if version == 4 and len(p) >= 20:
        ihl = (p[0] & 0x0F) * 4
        total = u16(p, 2)
        p = p[:total]
        pkt.ident = u16(p, 4)
        ff = u16(p, 6)
        pkt.mf = bool(ff & 0x2000)
        pkt.frag_off = ff & 0x1FFF
        pkt.proto = p[9]
        pkt.src = ipaddress.IPv4Address(p[12:16])
        pkt.dst = ipaddress.IPv4Address(p[16:20])
        l4 = p[ihl:]
        pkt.fragmented = pkt.mf or pkt.frag_off > 0
        pkt.frag_len = total - ihl
        pkt.frag_hdr = ihl
    elif version == 6 and len(p) >= 40:
        plen = u16(p, 4)
        pkt.proto = p[6]
        pkt.src = ipaddress.IPv6Address(p[8:24])
        pkt.dst = ipaddress.IPv6Address(p[24:40])
        l4 = p[40:40 + plen]
        if pkt.proto == 44 and len(l4) >= 8:       # a fragment header right after the fixed header
            field = u16(l4, 2)
            pkt.proto = l4[0]
            pkt.ident = struct.unpack("!I", l4[4:8])[0]
            pkt.frag_off = field >> 3
            pkt.mf = bool(field & 1)
            pkt.fragmented = pkt.mf or pkt.frag_off > 0
            l4 = l4[8:]
            pkt.frag_len = len(l4)
            pkt.frag_hdr = 0
    else:
        return None
    pkt.sport = pkt.dport = 0
    if pkt.frag_off:
        return pkt                      # a later fragment: no L4 header
    if pkt.mf:                          # a first fragment must hold its whole L4 header
        short = {TCP_P: len(l4) < 20 or len(l4) < (l4[12] >> 4) * 4, UDP_P: len(l4) < 8,
                 ICMP_P: len(l4) < 8, ICMP6_P: len(l4) < 8}
        pkt.malformed = short.get(pkt.proto, False)
    if pkt.proto in (TCP_P, UDP_P) and len(l4) >= 4:
        pkt.sport, pkt.dport = u16(l4, 0), u16(l4, 2)
        if pkt.proto == TCP_P and len(l4) >= 14:
            pkt.flags = l4[13]
        if pkt.proto == TCP_P and len(l4) >= 20:
            pkt.seq, pkt.ack = struct.unpack("!II", l4[4:12])
            pkt.window = u16(l4, 14)
            hlen = (l4[12] >> 4) * 4
            pkt.payload = max(0, len(l4) - hlen)
            if pkt.flags & SYN:
                pkt.wscale = tcp_wscale(l4[20:hlen])
    elif pkt.proto in (ICMP_P, ICMP6_P) and len(l4) >= 1:
        pkt.itype = l4[0]
        if pkt.itype in (ECHO_REQ[pkt.proto], ECHO_REP[pkt.proto]) and len(l4) >= 6:
            pkt.sport = pkt.dport = u16(l4, 4)
        errors = ICMP4_ERRORS if pkt.proto == ICMP_P else ICMP6_ERRORS
        if pkt.itype in errors:
            pkt.inner = l4[8:]
    return pkt


def tcp_wscale(opts):
    """The window-scale option (kind 3, length 3) in TCP option bytes; None if absent or bad."""
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            return None
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2 or i + opts[i + 1] > len(opts):
            return None
        if kind == 3:
            return opts[i + 2] if opts[i + 1] == 3 else None
        i += opts[i + 1]
    return None


M32 = 1 << 32


def lt(a, b):
    """a before b in sequence space (RFC 1982 style, modulo 2^32)."""
    return ((a - b) % M32) >= (1 << 31)


def le(a, b):
    return a == b or lt(a, b)


class Side:
    """What one end of a TCP connection has shown."""
    def __init__(self):
        self.end = self.maxend = self.maxwin = self.maxack = 0
        self.scale = 0
        self.offered = False
        self.acked = False


class Window:
    """Sequence windows of one connection. For a segment from sender to receiver it must hold:
    seq <= sender.maxend; seq+len >= sender.end - receiver.maxwin; ack <= receiver.end;
    ack >= receiver.end - max(sender.maxwin, 66000). RSTs: exactly the receiver's last ACK
    closes, elsewhere in the window passes keeping the state, outside is invalid; in SYN_SENT a
    refusal must acknowledge the SYN and the client's RST must sit at its next sequence number
    or at the ACK number of a challenge ACK let through."""

    def __init__(self):
        self.side = {"original": Side(), "reply": Side()}
        self.challenge_ack = None
        self.ignored_syn = None        # (end, window, wscale)

    def ignored(self, d, pkt):
        if d == "reply":
            self.challenge_ack = pkt.ack
        elif pkt.flags & SYN:
            self.ignored_syn = ((pkt.seq + 1) % M32, pkt.window, pkt.wscale)

    def check(self, d, pkt, state):
        """'accept' | 'keep' | 'restart'; raises Drop('invalid') when outside."""
        flags = pkt.flags
        syn, ack_f, rst, fin = (bool(flags & f) for f in (SYN, ACK, RST, FIN))
        if (d == "reply" and self.ignored_syn is not None and flags & 0x17 == 0x12
                and state not in ("SYN_SENT", "TIME_WAIT", "CLOSE") and pkt.ack == self.ignored_syn[0]):
            fresh = Window()
            end, win, ws = self.ignored_syn
            syn_pkt = Pkt()
            syn_pkt.flags, syn_pkt.seq, syn_pkt.ack, syn_pkt.window, syn_pkt.wscale = SYN, (end - 1) % M32, 0, win, ws
            fresh.check("original", syn_pkt, "SYN_SENT")
            fresh.check("reply", pkt, "SYN_SENT")
            self.side, self.challenge_ack, self.ignored_syn = fresh.side, None, None
            return "restart"
        me = self.side[d]
        other = self.side["reply" if d == "original" else "original"]
        seq = pkt.seq
        end = (seq + pkt.payload + syn + fin) % M32
        if syn and (me.maxwin == 0 or (state == "SYN_SENT" and d == "original" and lt(me.end, end))):
            me.end = me.maxend = end
            me.maxwin = max(pkt.window, 1)
            me.offered = pkt.wscale is not None
            me.scale = min(pkt.wscale or 0, 14)
            if d == "reply" and not (me.offered and other.offered):
                me.scale = other.scale = 0
            if not ack_f:
                return "accept"
        if rst:
            if state == "SYN_SENT":
                if d == "reply":
                    if ack_f and pkt.ack == other.end:
                        return "accept"
                    raise l2.Drop("invalid")
                if seq == me.end or seq == self.challenge_ack:
                    return "accept"
                raise l2.Drop("invalid")
            if other.acked and seq == other.maxack:
                return "accept"
            low = other.maxack if other.acked else (me.end - other.maxwin) % M32
            if lt(seq, low) or lt(me.maxend, seq):
                raise l2.Drop("invalid")
        ack = pkt.ack if ack_f and not (rst and pkt.ack == 0) else other.end
        if not le(seq, me.maxend):
            raise l2.Drop("invalid")
        if other.maxwin and not lt((me.end - other.maxwin - 1) % M32, end):
            raise l2.Drop("invalid")
        if other.maxwin:
            slack = max(me.maxwin, 66000)
            if not le(ack, other.end) or not lt((other.end - slack - 1) % M32, ack):
                raise l2.Drop("invalid")
        if rst and state != "SYN_SENT":
            return "keep"
        win = pkt.window if syn else pkt.window << me.scale
        me.maxwin = max(me.maxwin, win)
        if lt(me.end, end):
            me.end = end
        if ack_f:
            if not me.acked or lt(me.maxack, ack):
                me.maxack = ack
            me.acked = True
        if other.maxwin and lt(me.maxend, end):
            other.maxwin = min(other.maxwin + (end - me.maxend) % M32, 65535 << 14)
        if ack_f and lt((other.maxend - 1) % M32, (ack + win) % M32):
            other.maxend = (ack + win + (1 if win == 0 else 0)) % M32
        if not syn:
            # An in-window segment: what passed unchecked vouches for nothing any more.
            self.challenge_ack = None
            self.ignored_syn = None
        return "accept"


def ip_of_frame(stripped):
    et = u16(stripped, 12)
    if et in (0x0800, 0x86DD):
        return parse_ip(stripped[14:])
    return None


# --------------------------------------------------------------------------
# The firewall oracle
# --------------------------------------------------------------------------

class Conn:
    def __init__(self, proto, src, sport, dst, dport, now):
        self.proto = proto
        self.orig = (src, sport)
        self.resp = (dst, dport)
        self.state = "SYN_SENT" if proto == TCP_P else None
        self.window = Window() if proto == TCP_P else None
        self.closer = None          # "original" | "reply"
        self.replied = False
        self.last_seen = now

    def timeout_name(self):
        if self.proto == TCP_P:
            return "tcp_" + self.state.lower()
        if self.proto in (ICMP_P, ICMP6_P):
            return "icmp"
        return "udp_stream" if self.replied else "udp"

    def unreplied(self):
        return self.state == "SYN_SENT" if self.proto == TCP_P else not self.replied


class Datagram:
    """One fragmented datagram the firewall has seen pieces of."""

    def __init__(self, now):
        self.created = now
        self.fate = "waiting"       # waiting (first not seen) | passing | refused | broken
        self.pieces = []            # (start, end, last) in bytes of the datagram's payload
        self.end = None             # the last fragment's end, once seen
        self.held = []              # (port, frame) in arrival order

    def complete(self):
        return self.end is not None and sum(e - s for s, e, _ in self.pieces) == self.end

    def add(self, piece):
        """None when the piece fits; "duplicate", or "broken" (the datagram is then broken)."""
        start, end, last = piece
        if piece in self.pieces:
            return "duplicate"
        bad = any(start < e and s < end for s, e, _ in self.pieces)
        if self.end is not None:
            bad = bad or end > self.end or (last and end != self.end)
        elif last:
            bad = bad or any(e > end for _, e, _ in self.pieces)
        if bad:
            self.fate = "broken"
            return "broken"
        self.pieces.append(piece)
        if last:
            self.end = end
        return None


def frag_piece(pkt):
    """(start, end, last) of a fragment's payload in its datagram, or None if impossible."""
    start = pkt.frag_off * 8
    end = start + pkt.frag_len
    if pkt.frag_len <= 0 or pkt.frag_hdr + end > 65535 or (pkt.mf and pkt.frag_len % 8):
        return None
    return (start, end, not pkt.mf)


class Firewall:
    def __init__(self, cfg):
        self.default = cfg["default"]
        self.max = cfg.get("max_connections")
        self.timeouts = dict(DEFAULT_TIMEOUTS, **cfg.get("timeouts", {}))
        self.rules = [self.compile(r) for r in cfg.get("rules", [])]
        self.conns = {}         # (net, proto, src, sport, dst, dport) of the originator -> Conn
        self.frags = {}         # (net, src, dst, proto, id) -> Datagram
        self.evictions = 0
        self.dropped_held = 0   # held fragments dropped (counted `invalid`)

    @staticmethod
    def compile(r):
        c = dict(r)
        for k in ("src", "dst"):
            if k in c:
                c[k] = ipaddress.ip_network(c[k], strict=True)
        for k in ("sport", "dport"):
            if k in c:
                v = c[k]
                lo, hi = (int(x) for x in v.split("-")) if isinstance(v, str) else (v, v)
                c[k] = (lo, hi)
        return c

    # -- helpers -----------------------------------------------------------

    def expired(self, conn, now):
        return now - conn.last_seen >= self.timeouts[conn.timeout_name()] * US

    def purge(self, now):
        for k in [k for k, c in self.conns.items() if self.expired(c, now)]:
            del self.conns[k]
        for k in [k for k, d in self.frags.items() if now - d.created >= FRAGMENT_MEMORY_US]:
            self.drop_held(self.frags.pop(k))

    def drop_held(self, dg):
        self.dropped_held += len(dg.held)
        dg.held = []

    def lookup(self, net, proto, src, sport, dst, dport):
        """(key, conn, direction) or (None, None, None)."""
        k = (net, proto, src, sport, dst, dport)
        if k in self.conns:
            return k, self.conns[k], "original"
        k = (net, proto, dst, dport, src, sport)
        if k in self.conns:
            return k, self.conns[k], "reply"
        return None, None, None

    def rule_action(self, net, pkt):
        for r in self.rules:
            proto = r.get("proto", "any")
            if proto != "any" and PROTO_NUM[proto] != pkt.proto:
                continue
            if "src" in r and (r["src"].version != pkt.src.version or pkt.src not in r["src"]):
                continue
            if "dst" in r and (r["dst"].version != pkt.dst.version or pkt.dst not in r["dst"]):
                continue
            if "sport" in r and not r["sport"][0] <= pkt.sport <= r["sport"][1]:
                continue
            if "dport" in r and not r["dport"][0] <= pkt.dport <= r["dport"][1]:
                continue
            if "network" in r and r["network"] != net:
                continue
            return r["action"]
        return self.default

    def make_room(self):
        if self.max is None or len(self.conns) < self.max:
            return
        victims = [(c.last_seen, k) for k, c in self.conns.items() if c.unreplied()]
        if not victims:
            raise l2.Drop("table-full")
        del self.conns[min(victims)[1]]
        self.evictions += 1

    def new_connection(self, now, net, pkt, replacing=None):
        if self.rule_action(net, pkt) == "drop":
            raise l2.Drop("firewall")
        if replacing is not None:
            del self.conns[replacing]        # reopening a TIME_WAIT/CLOSE tuple needs no extra room
        else:
            self.make_room()
        conn = Conn(pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport, now)
        if conn.window is not None:
            conn.window.check("original", pkt, "SYN_SENT")
        self.conns[(net, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)] = conn

    # -- per packet --------------------------------------------------------

    def inspect(self, now, net, stripped):
        """Raise l2.Drop(reason), or return None (the frame passes), "hold" (a later fragment
        before its first: kept), or a Datagram whose held fragments leave after this frame."""
        pkt = ip_of_frame(stripped)
        if pkt is None:
            return                                   # not IP: untouched
        self.purge(now)
        if pkt.malformed:
            raise l2.Drop("invalid")
        if not pkt.fragmented:
            self.track(now, net, pkt)
            return
        piece = frag_piece(pkt)
        if piece is None:
            raise l2.Drop("invalid")
        fkey = (net, pkt.src, pkt.dst, pkt.proto, pkt.ident)
        dg = self.frags.get(fkey)
        if dg is None:
            dg = self.frags[fkey] = Datagram(now)
        elif dg.fate == "broken":
            raise l2.Drop("invalid")
        elif dg.fate in ("refused", "complete"):
            if pkt.frag_off > 0:
                raise l2.Drop("invalid")                 # of a refused datagram; a repeat or overlap
            dg = self.frags[fkey] = Datagram(now)        # its first again (or the id reused): afresh
        if dg.add(piece) is not None:
            if dg.fate == "broken":
                self.drop_held(dg)
            raise l2.Drop("invalid")
        if pkt.frag_off > 0:
            if dg.fate == "passing":
                if dg.complete():
                    dg.fate = "complete"
                return None
            return "hold"
        try:
            self.track(now, net, pkt)
        except l2.Drop:
            dg.fate = "refused"
            self.drop_held(dg)
            raise
        dg.fate = "passing"
        if dg.complete():
            dg.fate = "complete"
        return dg

    def track(self, now, net, pkt):
        if pkt.inner is not None:                    # ICMP error: related or invalid
            inner = parse_ip(pkt.inner)
            if inner is not None and inner.frag_off == 0:
                _, conn, _ = self.lookup(net, inner.proto, inner.src, inner.sport, inner.dst, inner.dport)
                if conn is not None:
                    return
            raise l2.Drop("invalid")
        if pkt.proto == ICMP6_P and pkt.itype in ICMP6_UNTRACKED:
            return
        key, conn, direction = self.lookup(net, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
        if conn is None:
            if pkt.proto == TCP_P and (pkt.flags & (SYN | ACK | RST | FIN)) != SYN:
                raise l2.Drop("invalid")
            if pkt.proto in (ICMP_P, ICMP6_P) and pkt.itype == ECHO_REP[pkt.proto]:
                raise l2.Drop("invalid")
            self.new_connection(now, net, pkt)
            return
        if pkt.proto == TCP_P:
            before = (conn.state, conn.closer)
            step = self.tcp_step(conn, direction, pkt.flags)
            if step == "reopen":
                self.new_connection(now, net, pkt, replacing=key)
                return
            if step == "ignore":
                conn.window.ignored(direction, pkt)
                return
            after = (conn.state, conn.closer)
            conn.state, conn.closer = before
            verdict = conn.window.check(direction, pkt, before[0])   # raises Drop: nothing changed
            if verdict == "accept":
                conn.state, conn.closer = after
            elif verdict == "restart":
                conn.state, conn.closer = "SYN_RECV", None
        elif direction == "reply":
            conn.replied = True
        conn.last_seen = now

    @staticmethod
    def tcp_step(conn, d, flags):
        """Apply the transition; raise Drop for invalid; 'reopen' for a SYN on TIME_WAIT/CLOSE;
        'ignore' for what passes unchecked: a reply ACK answering a SYN (a challenge ACK), a
        pure SYN from the client of a connection past SYN_SENT (a restarted client)."""
        syn, ack, rst, fin = (bool(flags & f) for f in (SYN, ACK, RST, FIN))
        pure_syn = syn and not (ack or rst or fin)
        closer = d == conn.closer
        s = conn.state
        if flags & 0x37 not in VALID_FLAGS:
            raise l2.Drop("invalid")
        if rst:
            conn.state = "CLOSE"
        elif d == "original" and pure_syn and s not in ("SYN_SENT", "TIME_WAIT", "CLOSE"):
            return "ignore"
        elif s == "SYN_SENT":
            if d == "original" and syn and not ack:
                pass
            elif d == "reply" and syn and ack:
                conn.state = "SYN_RECV"
            elif d == "reply" and ack and not syn and not fin:
                return "ignore"
            else:
                raise l2.Drop("invalid")
        elif s == "SYN_RECV":
            if d == "original" and ack and not syn:
                conn.state = "ESTABLISHED"
            elif fin:
                conn.state, conn.closer = "FIN_WAIT", d
        elif s == "ESTABLISHED":
            if fin:
                conn.state, conn.closer = "FIN_WAIT", d
        elif s == "FIN_WAIT":
            if not closer and fin:
                conn.state = "LAST_ACK"
            elif not closer and ack:
                conn.state = "CLOSE_WAIT"
        elif s == "CLOSE_WAIT":
            if not closer and fin:
                conn.state = "LAST_ACK"
        elif s == "LAST_ACK":
            if closer and ack and not fin:
                conn.state = "TIME_WAIT"
        elif s in ("TIME_WAIT", "CLOSE"):
            if pure_syn:
                return "reopen"
            if s == "CLOSE":
                raise l2.Drop("invalid")
        return None


class FwSwitch(l2.Switch):
    """The L2 oracle with the firewall in front of learning (after VLAN classification)."""

    def __init__(self, topo):
        super().__init__(topo)
        self.fw = Firewall(topo.firewall)

    def process(self, now, pname, frame):
        try:
            net, stripped, _, _, _ = l2.classify(self.topo, pname, frame)
            if stripped[6] & 1:
                verdict = None                       # L2 drops a group source; nothing is held
            else:
                verdict = self.fw.inspect(now, net, stripped)
        except l2.Drop as d:
            self.drops[d.reason] = self.drops.get(d.reason, 0) + 1
            self.count_held()
            return
        self.count_held()
        if verdict == "hold":
            self.fw.frags[(net,) + self.datagram_id(stripped)].held.append((pname, frame))
            self.learn(net, stripped[6:12], pname, now)
            return
        super().process(now, pname, frame)   # classifies again (same result), then L2
        if isinstance(verdict, Datagram):
            held, verdict.held = verdict.held, []
            for hport, hframe in held:
                super().process(now, hport, hframe, learn=False)

    @staticmethod
    def datagram_id(stripped):
        pkt = ip_of_frame(stripped)
        return (pkt.src, pkt.dst, pkt.proto, pkt.ident)

    def count_held(self):
        if self.fw.dropped_held:
            self.drops["invalid"] = self.drops.get("invalid", 0) + self.fw.dropped_held
            self.fw.dropped_held = 0

    def finish(self):
        """The capture is over: what is still held is dropped."""
        for dg in self.fw.frags.values():
            self.fw.drop_held(dg)
        self.count_held()


# --------------------------------------------------------------------------
# Topology with a firewall section
# --------------------------------------------------------------------------

def yaml_value(v):
    if isinstance(v, int):
        return str(v)
    return '"%s"' % v if (":" in v or "-" in v) else v


class FwTopology(l2.Topology):
    def __init__(self, name, ports, firewall, network=("lan", 10)):
        super().__init__(name, [network], [(p, l2.access("t-" + p, network[0])) for p in ports])
        self.firewall = firewall

    def yaml(self):
        fw = self.firewall
        lines = ["", "firewall:", "  default: %s" % fw["default"]]
        if "max_connections" in fw:
            lines.append("  max_connections: %d" % fw["max_connections"])
        if "timeouts" in fw:
            lines.append("  timeouts: { %s }" % ", ".join("%s: %d" % kv for kv in fw["timeouts"].items()))
        if fw.get("rules"):
            lines.append("  rules:")
            for r in fw["rules"]:
                lines.append("    - { %s }" % ", ".join("%s: %s" % (k, yaml_value(v)) for k, v in r.items()))
        return super().yaml() + "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Frame builders
# --------------------------------------------------------------------------

class Host:
    def __init__(self, port, mac, ip):
        self.port, self.mac, self.ip = port, mac, ip

    @property
    def v6(self):
        return ":" in self.ip


class Builder:
    """Builds frames with per-scenario IPv4 identification numbers (deterministic)."""

    def __init__(self):
        self.next_id = 0x1000

    def ip(self, a, b):
        if a.v6:
            return IPv6(src=a.ip, dst=b.ip, hlim=64)
        self.next_id += 1
        return IP(src=a.ip, dst=b.ip, ttl=64, id=self.next_id)

    @staticmethod
    def frame(a, b, l3):
        return l2.pad60(bytes(Ether(src=a.mac, dst=b.mac) / l3))

    def arp_req(self, a, b):
        return l2.arp_request(a.mac, a.ip, b.ip)

    def arp_rep(self, a, b):
        return l2.arp_reply(a.mac, a.ip, b.mac, b.ip)

    def tcp(self, a, b, sport, dport, flags, seq, ack=0, data=b"", window=64240, wscale=None):
        opts = [("MSS", 1460)] if "S" in flags else []
        if wscale is not None:
            opts += [("NOP", None), ("WScale", wscale)]
        l4 = TCP(sport=sport, dport=dport, flags=flags, seq=seq % M32, ack=ack % M32, window=window, options=opts)
        return self.frame(a, b, self.ip(a, b) / l4 / (Raw(data) if data else b""))

    def udp(self, a, b, sport, dport, data=b"tapestry firewall fixture"):
        return self.frame(a, b, self.ip(a, b) / UDP(sport=sport, dport=dport) / Raw(data))

    def echo(self, a, b, ident, seq, reply=False):
        data = b"tapestry-ping-%04d" % seq
        if a.v6:
            l4 = (ICMPv6EchoReply if reply else ICMPv6EchoRequest)(id=ident, seq=seq, data=data)
            return self.frame(a, b, self.ip(a, b) / l4)
        return self.frame(a, b, self.ip(a, b) / ICMP(type=0 if reply else 8, id=ident, seq=seq) / Raw(data))

    def icmp_error(self, a, b, quoted_frame, type_=3, code=3):
        """ICMPv4 error from a to b quoting the IP packet of quoted_frame (whole, as Linux does)."""
        p = quoted_frame[14:]
        p = p[:u16(p, 2)]
        return self.frame(a, b, self.ip(a, b) / ICMP(type=type_, code=code) / Raw(p))

    def udp_fragments(self, a, b, sport, dport, ident, size=100, first=64):
        """One UDP datagram in two IPv4 fragments (first carries `first` bytes of UDP, a multiple of 8)."""
        whole = bytes(IP(src=a.ip, dst=b.ip, ttl=64, id=ident) / UDP(sport=sport, dport=dport) /
                      Raw(bytes((i * 7 + 3) & 0xFF for i in range(size))))
        udp_bytes = whole[20:]
        f1 = self.frame(a, b, IP(src=a.ip, dst=b.ip, ttl=64, id=ident, proto=17, flags="MF", frag=0) /
                        Raw(udp_bytes[:first]))
        f2 = self.frame(a, b, IP(src=a.ip, dst=b.ip, ttl=64, id=ident, proto=17, frag=first // 8) /
                        Raw(udp_bytes[first:]))
        return f1, f2

    @staticmethod
    def l4_bytes(a, b, l4):
        """The bytes of an L4 header and data as they sit behind the IP header (checksum over the
        pseudo-header of a to b)."""
        if a.v6:
            return bytes(IPv6(src=a.ip, dst=b.ip, hlim=64) / l4)[40:]
        return bytes(IP(src=a.ip, dst=b.ip, ttl=64) / l4)[20:]

    def fragment(self, a, b, data, ident, offset, more, proto=17):
        """One fragment carrying `data` at byte `offset` of its datagram's payload."""
        if a.v6:
            header = IPv6ExtHdrFragment(nh=proto, offset=offset // 8, m=1 if more else 0, id=ident)
            return self.frame(a, b, IPv6(src=a.ip, dst=b.ip, hlim=64) / header / Raw(data))
        return self.frame(a, b, IP(src=a.ip, dst=b.ip, ttl=64, id=ident, proto=proto,
                                   flags="MF" if more else 0, frag=offset // 8) / Raw(data))

    def fragments(self, a, b, payload, ident, cuts, proto=17):
        """A datagram's payload cut at byte offsets `cuts` (multiples of 8): its fragments in order."""
        bounds = [0] + list(cuts) + [len(payload)]
        return [self.fragment(a, b, payload[bounds[i]:bounds[i + 1]], ident, bounds[i], i < len(bounds) - 2, proto)
                for i in range(len(bounds) - 1)]

    def ns(self, a, target):
        t = ipaddress.IPv6Address(target).packed
        sol = "ff02::1:ff%02x:%02x%02x" % (t[13], t[14], t[15])
        dmac = "33:33:ff:%02x:%02x:%02x" % (t[13], t[14], t[15])
        return l2.pad60(bytes(Ether(src=a.mac, dst=dmac) / IPv6(src=a.ip, dst=sol, hlim=255) /
                              ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=a.mac)))

    def na(self, a, b):
        return self.frame(a, b, IPv6(src=a.ip, dst=b.ip, hlim=255) / ICMPv6ND_NA(tgt=a.ip, R=0, S=1, O=1) /
                          ICMPv6NDOptDstLLAddr(lladdr=a.mac))

    def rs(self, a):
        return l2.pad60(bytes(Ether(src=a.mac, dst="33:33:00:00:00:02") / IPv6(src=a.ip, dst="ff02::2", hlim=255) /
                              ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=a.mac)))


class Tcp:
    """One TCP conversation with real sequence/acknowledgement numbers."""

    def __init__(self, b, client, server, cport, sport, cisn=1000000, sisn=5000000):
        self.b, self.cli, self.srv, self.cport, self.sport = b, client, server, cport, sport
        self.nxt = {"c": cisn, "s": sisn}

    def send(self, side, flags, data=b"", advance=True, seq=None):
        other = "s" if side == "c" else "c"
        seq = self.nxt[side] if seq is None else seq
        ack = self.nxt[other] if "A" in flags else 0
        if advance:
            self.nxt[side] = seq + len(data) + ("S" in flags) + ("F" in flags)
        if side == "c":
            return self.b.tcp(self.cli, self.srv, self.cport, self.sport, flags, seq, ack, data)
        return self.b.tcp(self.srv, self.cli, self.sport, self.cport, flags, seq, ack, data)

    def c(self, flags, data=b"", **kw):
        return self.send("c", flags, data, **kw)

    def s(self, flags, data=b"", **kw):
        return self.send("s", flags, data, **kw)


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def emit(name, topo, frames, readme, root=None):
    """frames: list of (offset_seconds, port, bytes); 3..40 frames, distinct offsets, >= 60 bytes."""
    sw = FwSwitch(topo)
    inputs = l2.feed(name, topo, frames, sw, max_frames=40, min_length=60)
    sw.finish()
    drops = {k: v for k, v in sorted(sw.drops.items()) if v}
    l2.write_scenario(os.path.join(root or l2.OUT_ROOT, name), topo, inputs, sw.out, {"drops": drops},
                      readme.format(evictions=sw.fw.evictions))
    return sw


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

C = Host("c", "02:00:00:00:01:01", "10.0.1.1")
S = Host("s", "02:00:00:00:01:02", "10.0.1.2")
X = Host("x", "02:00:00:00:01:03", "10.0.1.3")
M = Host("m", "02:00:00:00:01:66", "10.0.1.66")
C6 = Host("c", C.mac, "fd00:1::1")
S6 = Host("s", S.mac, "fd00:1::2")

WEB_POLICY = {"default": "drop",
              "rules": [{"action": "allow", "proto": "tcp", "dst": "10.0.1.2", "dport": 80}]}

HTTP_GET = b"GET / HTTP/1.1\r\nHost: 10.0.1.2\r\n\r\n"
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def s_unsolicited_reply():
    policy = {"default": "drop", "rules": [
        {"action": "allow", "proto": "tcp", "dst": "10.0.1.2", "dport": 80},
        {"action": "allow", "proto": "icmp", "src": "10.0.1.1"},
        {"action": "allow", "proto": "udp", "src": "10.0.1.1", "dst": "10.0.1.2"},
        {"action": "drop", "proto": "udp", "src": "10.0.1.2", "dst": "10.0.1.1"},
    ]}
    topo = FwTopology("fw-unsolicited", ["c", "s"], policy)
    b = Builder()
    frames = [
        (0.0, "s", b.tcp(S, C, 80, 40001, "SA", 8000000, 1000001)),   # invalid
        (0.1, "s", b.echo(S, C, 0x4242, 1, reply=True)),              # invalid
        (0.2, "s", b.udp(S, C, 5353, 5000)),                          # rule drop: firewall
        (1.0, "c", b.echo(C, S, 0x0101, 1)),                          # allowed
        (1.001, "s", b.echo(S, C, 0x0101, 1, reply=True)),            # reply passes
        (1.002, "s", b.echo(S, C, 0x0101, 1, reply=True)),            # duplicate reply still passes
        (1.003, "s", b.echo(S, C, 0x0102, 1, reply=True)),            # other identifier: invalid
        (2.0, "c", b.udp(C, S, 40000, 5000)),                         # allowed
        (2.001, "s", b.udp(S, C, 5000, 40000)),                       # reply passes despite the drop rule
    ]
    return emit("fw-unsolicited-reply", topo, frames,
                "Unsolicited TCP SYN+ACK and ICMP echo replies are `invalid`; server-to-client UDP is dropped by rule (`firewall`) unless it is the reply of a client flow.")


def s_icmp():
    policy = {"default": "drop", "rules": [
        {"action": "allow", "proto": "icmp", "src": "10.0.1.1"},
        {"action": "allow", "proto": "udp", "src": "10.0.1.1", "dst": "10.0.1.2", "dport": 123}]}
    topo = FwTopology("fw-icmp", ["c", "s"], policy)
    b = Builder()
    ntp = b.udp(C, S, 40000, 123, b"ntp-request-bytes-0123456789")
    ping = b.echo(C, S, 0x1234, 1)
    untracked = b.udp(C, S, 40050, 124, b"never-sent")
    frames = [
        (0.0, "c", ping),                                       # allowed echo
        (0.001, "s", b.echo(S, C, 0x1234, 1, reply=True)),      # reply
        (0.5, "c", b.echo(C, S, 0x1234, 2)),
        (0.501, "s", b.echo(S, C, 0x1234, 2, reply=True)),
        (0.6, "s", b.icmp_error(S, C, ping, type_=11, code=0)),  # time exceeded about the echo: related
        (0.7, "s", b.echo(S, C, 0x5555, 1)),                    # server-initiated ping: firewall
        (1.0, "c", ntp),                                        # allowed UDP
        (1.001, "s", b.icmp_error(S, C, ntp)),                  # port unreachable: related
        (2.0, "s", b.icmp_error(S, C, untracked)),              # about an untracked flow: invalid
        (20.0, "s", b.icmp_error(S, C, ntp)),                   # related again; does not refresh
        (31.5, "s", b.udp(S, C, 123, 40000, b"late-ntp-answer")),  # flow idle since 1.0: gone -> firewall
    ]
    return emit("fw-icmp", topo, frames,
                "ICMP echo is tracked by identifier; ICMP errors quoting a live connection pass as related (without refreshing it), others are `invalid`.")


def s_ipv6():
    policy = {"default": "drop", "rules": [
        {"action": "allow", "proto": "tcp", "src": "fd00:1::/64", "dst": "fd00:1::2", "dport": 443},
        {"action": "allow", "proto": "udp", "src": "10.0.0.0/8"},
        {"action": "allow", "proto": "icmpv6", "src": "fd00:1::1"}]}
    topo = FwTopology("fw-ipv6", ["c", "s"], policy)
    b = Builder()
    t = Tcp(b, C6, S6, 50000, 443)
    frames = [
        (0.0, "c", b.rs(C6)),                                   # router solicitation: untracked
        (0.1, "c", b.ns(C6, S6.ip)),                            # neighbor solicitation: untracked
        (0.101, "s", b.na(S6, C6)),                             # neighbor advertisement: untracked
        (1.0, "c", t.c("S")),
        (1.001, "s", t.s("SA")),
        (1.002, "c", t.c("A")),
        (1.003, "c", t.c("PA", b"\x16\x03\x01 client hello")),
        (1.004, "s", t.s("PA", b"\x16\x03\x03 server hello")),
        (2.0, "c", b.udp(C6, S6, 50001, 53)),                   # IPv4 prefix never matches: firewall
        (3.0, "c", b.echo(C6, S6, 0x0606, 1)),                  # ICMPv6 echo allowed
        (3.001, "s", b.echo(S6, C6, 0x0606, 1, reply=True)),
        (3.5, "s", b.echo(S6, C6, 0x0707, 1, reply=True)),      # unsolicited echo reply: invalid
        (4.0, "s", b.ns(S6, C6.ip)),                            # untracked, even from the server
    ]
    return emit("fw-ipv6", topo, frames,
                "IPv6: a TCP handshake allowed by an fd00:1::/64 rule, UDP blocked (an IPv4 prefix never matches IPv6), ICMPv6 echo tracked, RS/NS/NA pass untracked.")


def s_fragments():
    policy = {"default": "drop", "rules": [
        {"action": "allow", "proto": "udp", "src": "10.0.1.1", "dst": "10.0.1.2", "dport": 5000}]}
    topo = FwTopology("fw-fragments", ["c", "s"], policy)
    b = Builder()
    ok1, ok2 = b.udp_fragments(C, S, 40000, 5000, ident=0x2001)
    bad1, bad2 = b.udp_fragments(C, S, 40001, 6000, ident=0x2002)
    _, lone = b.udp_fragments(C, S, 40002, 5000, ident=0x2003)
    late1, late2 = b.udp_fragments(C, S, 40000, 5000, ident=0x2004)
    frames = [
        (0.0, "c", ok1),                                        # first fragment, allowed port
        (0.001, "c", ok2),                                      # remembered: passes
        (0.01, "s", b.udp(S, C, 5000, 40000, b"ack")),          # reply to the reassembled flow
        (1.0, "c", bad1),                                       # port 6000: firewall
        (1.001, "c", bad2),                                     # its first fragment was dropped: invalid
        (2.0, "c", lone),                                       # no first fragment ever: invalid
        (3.0, "c", late1),                                      # passes, remembered at 3.0
        (34.0, "c", late2),                                     # 31 s later: forgotten, invalid
    ]
    return emit("fw-fragments", topo, frames,
                "IPv4 fragments: later fragments follow their first fragment's verdict (remembered 30 s); orphans and fragments of dropped datagrams are `invalid`.")


def s_fragments_any_order():
    policy = {"default": "drop", "rules": [
        {"action": "allow", "proto": "udp", "dst": "10.0.1.2", "dport": 5000},
        {"action": "allow", "proto": "tcp", "dst": "10.0.1.2", "dport": 80}]}
    topo = FwTopology("fw-frag-order", ["c", "s"], policy)
    b = Builder()

    def udp(dport, size, ident, cuts):
        data = bytes((i * 11 + ident) & 0xFF for i in range(size))
        return b.fragments(C, S, b.l4_bytes(C, S, UDP(sport=40000, dport=dport) / Raw(data)), ident, cuts)

    a = udp(5000, 52, 0x3001, [24, 48])                 # 60 bytes: [0,24) [24,48) [48,60)
    r = udp(6000, 52, 0x3002, [24, 48])                 # refused by the rules
    d = udp(5000, 52, 0x3003, [24, 48])
    again = udp(5000, 52, 0x3003, [24, 48])             # the same identification, once complete
    o = udp(5000, 52, 0x3004, [24, 48])
    forged = b.fragment(C, S, b"\xee" * 16, 0x3004, 16, True)       # bytes 16..31: over the first
    e = udp(5000, 52, 0x3005, [24, 48])
    over_held = b.fragment(C, S, b"\xee" * 16, 0x3005, 40, True)    # bytes 40..55: over the held last
    tiny = udp(5000, 24, 0x3006, [8, 16, 24])           # 8-byte fragments
    syn = b.l4_bytes(C, S, TCP(sport=40001, dport=80, flags="S", seq=1000, options=[("MSS", 1460)]))
    short_first = b.fragments(C, S, syn, 0x3007, [8], proto=6)     # 8 bytes: no TCP flags in it
    lone = udp(5000, 52, 0x3008, [24])[1]
    late = udp(5000, 52, 0x3009, [24])
    frames = [
        (0.0, "c", a[2]),                    # last first: held
        (0.001, "c", a[1]),                  # held
        (0.002, "c", a[0]),                  # first passes; the held two follow in arrival order
        (0.01, "s", b.udp(S, C, 5000, 40000, b"reply")),
        (1.0, "c", r[2]),                    # held
        (1.001, "c", r[0]),                  # refused (firewall): the held one is invalid
        (1.002, "c", r[1]),                  # invalid
        (2.0, "c", d[0]),
        (2.001, "c", d[1]),
        (2.002, "c", d[1]),                  # an exact duplicate: invalid, the datagram goes on
        (2.003, "c", d[2]),                  # complete: forgotten
        (2.5, "c", again[0]),                # the identification again: a new datagram
        (2.501, "c", again[2]),
        (2.502, "c", again[1]),
        (3.0, "c", o[0]),
        (3.001, "c", forged),                # overlaps the first: invalid, the datagram broken
        (3.002, "c", o[1]),                  # invalid
        (3.003, "c", o[2]),                  # invalid
        (4.0, "c", e[2]),                    # held
        (4.001, "c", over_held),             # overlaps it: both invalid
        (4.002, "c", e[0]),                  # invalid
        (5.0, "c", tiny[3]),
        (5.001, "c", tiny[2]),
        (5.002, "c", tiny[1]),
        (5.003, "c", tiny[0]),               # an 8-byte first fragment (the UDP header): all four go
        (6.0, "c", short_first[0]),          # too short for its TCP header: invalid
        (6.001, "c", short_first[1]),        # held, never released: invalid at the end
        (7.0, "c", lone),                    # no first fragment ever: invalid at the end
        (8.0, "c", late[1]),                 # held
        (39.0, "c", late[0]),                # 31 s on: the held one was dropped; this passes alone
    ]
    return emit("fw-frag-order", topo, frames,
                "IPv4 fragments in any order: later fragments before their first are held and follow it (arrival order) or its refusal; an exact duplicate is `invalid` alone; an overlap (before or after the first) drops the datagram; 8-byte fragments pass; a first fragment too short for its TCP header is `invalid`; held fragments whose first never comes are `invalid` (after 30 s, or when the capture ends).")


def s_fragments_v6():
    policy = {"default": "drop", "rules": [
        {"action": "allow", "proto": "udp", "src": "fd00:1::/64", "dport": 5000}]}
    topo = FwTopology("fw-frag-ipv6", ["c", "s"], policy)
    b = Builder()

    def udp(dport, size, ident, cuts):
        data = bytes((i * 13 + ident) & 0xFF for i in range(size))
        return b.fragments(C6, S6, b.l4_bytes(C6, S6, UDP(sport=40000, dport=dport) / Raw(data)), ident, cuts)

    a = udp(5000, 72, 0x7000_0001, [40])
    d = udp(5000, 72, 0x7000_0002, [24, 56])
    o = udp(5000, 72, 0x7000_0003, [40])
    forged = b.fragment(C6, S6, b"\xee" * 16, 0x7000_0003, 32, True)
    tiny = udp(5000, 24, 0x7000_0004, [8, 16, 24])
    r = udp(6000, 72, 0x7000_0005, [40])
    frames = [
        (0.0, "c", a[1]),                    # last first: held
        (0.001, "c", a[0]),                  # both go
        (1.0, "c", d[0]),
        (1.001, "c", d[2]),
        (1.002, "c", d[2]),                  # duplicate: invalid
        (1.003, "c", d[1]),
        (2.0, "c", o[1]),                    # held
        (2.001, "c", forged),                # overlaps the held one: both invalid (RFC 5722)
        (2.002, "c", o[0]),                  # invalid
        (3.0, "c", tiny[3]),
        (3.001, "c", tiny[1]),
        (3.002, "c", tiny[2]),
        (3.003, "c", tiny[0]),               # all four go: first, then 24, 8, 16 (arrival order)
        (4.0, "c", r[1]),                    # held
        (4.001, "c", r[0]),                  # refused: firewall, the held one invalid
    ]
    return emit("fw-frag-ipv6", topo, frames,
                "IPv6 fragments (fragment header) in any order: a last fragment before the first is held and follows it; a duplicate is `invalid` alone; an overlap with a held fragment drops the datagram (RFC 5722); 8-byte fragments in any order pass; a refused first fragment takes its held fragment with it.")


def s_table_full():
    policy = {"default": "drop", "max_connections": 2, "timeouts": {"tcp_close": 5}, "rules": [
        {"action": "allow", "proto": "tcp", "dst": "10.0.1.2", "dport": 80},
        {"action": "allow", "proto": "udp", "src": "10.0.1.1", "dst": "10.0.1.2", "dport": "5000-5999"}]}
    topo = FwTopology("fw-table-full", ["c", "s"], policy)
    b = Builder()
    t1 = Tcp(b, C, S, 40000, 80)
    t2 = Tcp(b, C, S, 40001, 80, cisn=2000000, sisn=6000000)
    t3 = Tcp(b, C, S, 40002, 80, cisn=3000000, sisn=7000000)
    frames = [
        (0.0, "c", t1.c("S")), (0.001, "s", t1.s("SA")), (0.002, "c", t1.c("A")),   # conn 1
        (1.0, "c", t2.c("S")), (1.001, "s", t2.s("SA")), (1.002, "c", t2.c("A")),   # conn 2: table full
        (2.0, "c", t3.c("S")),                                  # no unreplied entry: table-full
        (3.0, "c", t2.c("RA")),                                 # conn 2 -> CLOSE (5 s here)
        (4.0, "c", t2.c("A")),                                  # in CLOSE: invalid
        (9.0, "c", b.udp(C, S, 40100, 5000, b"flow-u1")),      # conn 2 gone at 8: room; u1 unreplied
        (10.0, "c", b.udp(C, S, 40101, 5001, b"flow-u2")),     # full: evicts u1
        (10.5, "s", b.udp(S, C, 5000, 40100, b"reply-u1")),    # u1 gone; s->c not allowed: firewall
        (11.0, "s", b.udp(S, C, 5001, 40101, b"reply-u2")),    # u2 replied
        (12.0, "c", b.udp(C, S, 40102, 5002, b"flow-u3")),     # nothing evictable: table-full
        (13.0, "c", t1.c("PA", HTTP_GET)),                      # established conn 1 unaffected
        (13.001, "s", t1.s("PA", HTTP_OK)),
    ]
    return emit("fw-table-full", topo, frames,
                "max_connections 2: a third connection is refused `table-full` while both are replied; an unreplied UDP flow is evicted for a new one ({evictions} eviction), so its late reply is a denied new flow.")


def s_syn_flood():
    policy = {"default": "drop", "max_connections": 4, "rules": [
        {"action": "allow", "proto": "tcp", "dst": "10.0.1.2", "dport": 80}]}
    topo = FwTopology("fw-syn-flood", ["c", "s", "a"], policy)
    b = Builder()
    amac = "02:00:00:00:01:aa"
    bots = [Host("a", amac, "10.0.1.%d" % (100 + i % 8)) for i in range(24)]
    sessions = [Tcp(b, bots[i], S, 20000 + i, 80, cisn=10000000 + 1000 * i, sisn=60000000 + 1000 * i)
                for i in range(24)]
    e = Tcp(b, C, S, 40000, 80)
    frames = [
        (0.0, "c", e.c("S")), (0.001, "s", e.s("SA")), (0.002, "c", e.c("A")),
        (0.003, "c", e.c("PA", HTTP_GET)),
    ]
    for i in range(20):                                         # 20 SYNs: 3 fit, 17 evict
        frames.append((1.0 + 0.01 * i, "a", sessions[i].c("S")))
    frames += [
        (2.0, "s", sessions[0].s("SA")),                        # evicted long ago: invalid
        (2.1, "s", sessions[18].s("SA")),                       # live: SYN_RECV (no longer evictable)
        (2.2, "s", sessions[19].s("SA")),
        (2.3, "s", sessions[17].s("SA")),
    ]
    for i in range(20, 24):                                     # nothing unreplied left: table-full
        frames.append((3.0 + 0.01 * (i - 20), "a", sessions[i].c("S")))
    frames += [
        (4.0, "s", e.s("PA", HTTP_OK)),                         # established data still passes
        (4.001, "c", e.c("A")),
    ]
    return emit("fw-syn-flood", topo, frames,
                "max_connections 4 under a SYN flood: unreplied SYN_SENT entries evict each other ({evictions} evictions, not drops), a SYN+ACK for an evicted one is `invalid`, once only replied entries remain new SYNs are `table-full`, and the established connection is never evicted.")


def s_default_allow():
    policy = {"default": "allow", "rules": [{"action": "drop", "src": "10.0.1.66"}]}
    topo = FwTopology("fw-dflt-allow", ["c", "s", "m"], policy)
    b = Builder()
    t = Tcp(b, C, S, 40000, 8080)
    mt = Tcp(b, M, S, 41000, 22)
    back = Tcp(b, S, M, 42000, 25, cisn=4000000, sisn=8000000)
    frames = [
        (0.0, "c", b.arp_req(C, S)),
        (0.001, "s", b.arp_rep(S, C)),
        (1.0, "c", t.c("S")), (1.001, "s", t.s("SA")), (1.002, "c", t.c("A")),
        (1.003, "c", t.c("PA", HTTP_GET)), (1.004, "s", t.s("PA", HTTP_OK)),
        (2.0, "s", b.udp(S, C, 5353, 5000)),                    # any direction may start flows
        (2.001, "c", b.udp(C, S, 5000, 5353)),
        (3.0, "m", b.arp_req(M, S)),                            # non-IP: passes, m learned
        (3.1, "m", mt.c("S")),                                  # drop rule: firewall
        (3.2, "m", b.echo(M, S, 0x6666, 1)),                    # firewall
        (3.3, "m", b.udp(M, C, 41001, 5000)),                   # firewall
        (4.0, "s", b.echo(S, M, 0x0202, 1)),                    # s -> m allowed
        (4.001, "m", b.echo(M, S, 0x0202, 1, reply=True)),      # reply from m passes
        (5.0, "s", back.c("S")),                                # s opens to m:25
        (5.001, "m", back.s("SA")),                             # m's reply passes
        (5.002, "s", back.c("A")),
        (5.003, "m", back.s("PA", b"220 mail ready\r\n")),
    ]
    return emit("fw-default-allow", topo, frames,
                "`default: allow` with one drop rule for 10.0.1.66: everything passes except new connections from that host (`firewall`); its replies to others' connections pass.")


def s_windows():
    """Sequence windows on one scaled connection and one where only the client offers scaling."""
    topo = FwTopology("fw-windows", ["c", "s", "x"], WEB_POLICY)
    b = Builder()
    ci, si = 3_000_000_000, 4_294_960_000          # the server's numbers wrap past 2^32
    frames = [
        (0.0, "c", b.tcp(C, S, 40001, 80, "S", ci, window=64240, wscale=7)),
        (0.001, "s", b.tcp(S, C, 80, 40001, "SA", si, ci + 1, window=65160, wscale=7)),
        (0.002, "c", b.tcp(C, S, 40001, 80, "A", ci + 1, si + 1, window=502)),
        (0.003, "c", b.tcp(C, S, 40001, 80, "PA", ci + 1, si + 1, HTTP_GET, window=502)),
        # The server's window: 509 << 7 = 65152 bytes from its ACK.
        (0.004, "s", b.tcp(S, C, 80, 40001, "A", si + 1, ci + 1 + len(HTTP_GET), window=509)),
        (0.005, "s", b.tcp(S, C, 80, 40001, "PA", si + 1, ci + 1 + len(HTTP_GET), HTTP_OK, window=509)),
        (0.006, "c", b.tcp(C, S, 40001, 80, "PA", ci + 1, si + 1, HTTP_GET, window=502)),       # retransmission: passes
        (0.007, "c", b.tcp(C, S, 40001, 80, "A", ci + len(HTTP_GET), si + 1 + len(HTTP_OK), window=502)),  # keepalive
        # Past 64240 unscaled but inside 65152 scaled: passes only because both SYNs offered scaling.
        (0.008, "c", b.tcp(C, S, 40001, 80, "PA", ci + 1 + 65000, si + 1 + len(HTTP_OK), b"x" * 100, window=502)),
        (0.009, "c", b.tcp(C, S, 40001, 80, "PA", ci + 1 + 70000, si + 1 + len(HTTP_OK), b"y" * 100, window=502)),  # beyond: invalid
        (0.010, "c", b.tcp(C, S, 40001, 80, "PA", ci - 200000, si + 1 + len(HTTP_OK), b"z" * 100, window=502)),   # stale: invalid
        (0.011, "s", b.tcp(S, C, 80, 40001, "A", si + 1 + len(HTTP_OK), ci + 1 + 90000, window=509)),  # ACKs unsent data: invalid
        # Forged RSTs from x with the server's address: outside the window, invalid.
        (0.012, "x", b.tcp(S, C, 80, 40001, "R", 2_000_000_000)),
        (0.013, "x", b.tcp(S, C, 80, 40001, "R", si + 1 + 10_000_000)),
        # A RST in the window but not exact: passes, the connection stays.
        (0.014, "s", b.tcp(S, C, 80, 40001, "R", si + 1 + len(HTTP_OK) + 1000)),
        (0.015, "c", b.tcp(C, S, 40001, 80, "FA", ci + 1 + 65000 + 100 + 300000, si + 1 + len(HTTP_OK), window=502)),  # FIN outside: invalid
        (0.0155, "c", b.tcp(C, S, 40001, 80, "F", ci + 1 + 65100, 0, window=502)),     # FIN without ACK: invalid
        (0.016, "c", b.tcp(C, S, 40001, 80, "FA", ci + 1 + 65100, si + 1 + len(HTTP_OK), window=502)),
        (0.017, "s", b.tcp(S, C, 80, 40001, "FA", si + 1 + len(HTTP_OK), ci + 1 + 65101, window=509)),
        (0.018, "c", b.tcp(C, S, 40001, 80, "A", ci + 1 + 65101, si + 2 + len(HTTP_OK), window=502)),
        # Only the client offers scaling: the server's 509 is 509 bytes, data 600 bytes on is outside.
        (1.0, "c", b.tcp(C, S, 40002, 80, "S", 1000, window=64240, wscale=7)),
        (1.001, "s", b.tcp(S, C, 80, 40002, "SA", 5000, 1001, window=509)),
        (1.002, "c", b.tcp(C, S, 40002, 80, "A", 1001, 5001, window=502)),
        (1.003, "c", b.tcp(C, S, 40002, 80, "PA", 1001 + 600, 5001, b"w" * 10, window=502)),      # invalid
        (1.004, "c", b.tcp(C, S, 40002, 80, "PA", 1001, 5001, b"v" * 400, window=502)),          # passes
    ]
    return emit("fw-windows", topo, frames,
                "TCP sequence windows: retransmission and keepalive pass; data past the scaled window, stale data, an ACK of unsent data, forged and out-of-window RSTs, an out-of-window FIN and a FIN without ACK are `invalid`; an in-window RST passes without closing; scaling only when both SYNs offer it; sequence numbers wrap.")


def s_challenge_ack():
    """RFC 5961 challenge ACKs: after a switch restart, on a live connection, and a SYN-ACK that restarts."""
    topo = FwTopology("fw-challenge", ["c", "s"], WEB_POLICY)
    b = Builder()
    frames = [
        # The switch knows nothing of the server's old connection on 40001.
        (0.0, "c", b.tcp(C, S, 40001, 80, "S", 7000)),
        (0.001, "s", b.tcp(S, C, 80, 40001, "A", 90000, 33333)),          # challenge ACK: passes
        (0.002, "c", b.tcp(C, S, 40001, 80, "R", 33334)),                 # not at its ACK number: invalid
        (0.003, "c", b.tcp(C, S, 40001, 80, "R", 33333)),                 # the answer: passes, CLOSE
        (1.0, "c", b.tcp(C, S, 40001, 80, "S", 7000)),                    # reopens
        (1.001, "s", b.tcp(S, C, 80, 40001, "SA", 123, 7001)),
        (1.002, "c", b.tcp(C, S, 40001, 80, "A", 7001, 124)),
        # A refusal must acknowledge the SYN.
        (2.0, "c", b.tcp(C, S, 40002, 80, "S", 500)),
        (2.0005, "s", b.tcp(S, C, 80, 40002, "SR", 0, 501)),             # SYN+RST is no segment a TCP sends: invalid
        (2.001, "s", b.tcp(S, C, 80, 40002, "R", 0)),                     # invalid
        (2.002, "s", b.tcp(S, C, 80, 40002, "RA", 0, 501)),               # passes, CLOSE
        # A live connection; the client restarts and sends a SYN with a new ISN.
        (3.0, "c", b.tcp(C, S, 40003, 80, "S", 1000)),
        (3.001, "s", b.tcp(S, C, 80, 40003, "SA", 5000, 1001)),
        (3.002, "c", b.tcp(C, S, 40003, 80, "A", 1001, 5001)),
        (3.003, "c", b.tcp(C, S, 40003, 80, "PA", 1001, 5001, HTTP_GET)),
        (3.004, "s", b.tcp(S, C, 80, 40003, "A", 5001, 1001 + len(HTTP_GET))),
        (4.0, "c", b.tcp(C, S, 40003, 80, "S", 2_000_000_000)),           # passes unchecked
        (4.001, "s", b.tcp(S, C, 80, 40003, "A", 5001, 1001 + len(HTTP_GET))),   # challenge ACK, in the old window
        (4.002, "c", b.tcp(C, S, 40003, 80, "R", 1001 + len(HTTP_GET))),  # the exact RST: CLOSE
        (5.0, "c", b.tcp(C, S, 40003, 80, "S", 2_000_000_000)),           # reopens
        (5.001, "s", b.tcp(S, C, 80, 40003, "SA", 77, 2_000_000_001)),
        (5.002, "c", b.tcp(C, S, 40003, 80, "A", 2_000_000_001, 78)),
        # Another live connection; this server had forgotten it and answers the new SYN.
        (6.0, "c", b.tcp(C, S, 40004, 80, "S", 1000)),
        (6.001, "s", b.tcp(S, C, 80, 40004, "SA", 5000, 1001)),
        (6.002, "c", b.tcp(C, S, 40004, 80, "A", 1001, 5001)),
        (7.0, "c", b.tcp(C, S, 40004, 80, "S", 400000)),                  # passes unchecked
        (7.001, "s", b.tcp(S, C, 80, 40004, "SA", 9, 400001)),            # answers it: restarts, SYN_RECV
        (7.002, "c", b.tcp(C, S, 40004, 80, "A", 400001, 10)),
        (7.003, "c", b.tcp(C, S, 40004, 80, "PA", 400001, 10, HTTP_GET)),
        (7.004, "c", b.tcp(C, S, 40004, 80, "PA", 1001, 5001, HTTP_GET)),  # the old connection's numbers: invalid
    ]
    return emit("fw-challenge-ack", topo, frames,
                "RFC 5961 challenge ACKs: a reply ACK answering a SYN passes and the client's RST at its ACK number closes; a refusal must acknowledge the SYN (SYN+RST is invalid); a new SYN on a live connection passes unchecked, the challenge ACK and exact RST close it; a SYN-ACK answering that SYN restarts the connection.")


SCENARIOS = [
    s_unsolicited_reply, s_icmp,
    s_ipv6, s_fragments, s_fragments_any_order, s_fragments_v6, s_table_full, s_syn_flood, s_default_allow, s_windows, s_challenge_ack,
]


def main():
    os.makedirs(l2.OUT_ROOT, exist_ok=True)
    for fn in SCENARIOS:
        sw = fn()
        outs = {p: len(v) for p, v in sw.out.items()}
        print("%-22s out=%s drops=%s evictions=%d" % (sw.folder, outs, dict(sorted(sw.drops.items())),
                                                      sw.fw.evictions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
