#!/usr/bin/env python3
"""Generate the load-balancer replay fixtures (Tests/TapestryReplayTests/Scenarios/lb-*/).

An independent oracle, like scripts/gen_replay_fixtures.py (VLAN classification, egress
tagging, the L2 `Switch`, pcap writing: imported) and scripts/gen_firewall_fixtures.py
(the firewall model, frame builders, YAML of the firewall section: imported). This file
adds a plain-Python model of the load balancer and writes, per scenario, the same folder
format: topology.yaml (with `load_balancers:`), in/<PORT>.pcap, expect/<PORT>.pcap (every
port), expect/summary.json ({"drops": {reason: count}} with nonzero counts only, plus
"lb_unresolved": N, which is not a drop), README.md (one line).

Pipeline order modelled, per frame:
  VLAN classification -> backend MAC learning (rule 3, on the frame as it arrived)
  -> firewall (if any; on the packet as it arrived; an LB reply is shown to it as coming
     from VIP:port, i.e. the reply direction of the client's connection to the VIP)
  -> load balancer -> L2 learning/forwarding -> egress tagging.

Load-balancer model (what the expected outputs encode):
1. ARP request for a VIP of the frame's network: answered in place (same length, padding
   kept), out of the ingress port only, with the request's PCP/DEI on a trunk.
2. ICMP echo request to a VIP: answered in place (IP src/dst swapped, TTL and IP checksum
   unchanged, type 0, ICMP checksum recomputed), out of the ingress port only.
3. Backend MACs: from ARP sender (IP, MAC) and IPv4 (source IP, eth source) of every
   classified frame of the LB's network; never forgotten.
4. New connection to VIP:port/proto: TCP must be a pure SYN (else `invalid`); backend by
   smooth weighted round robin (nginx). Connections are timed with the firewall model's
   TCP state machine and timeouts (UDP 30 s unreplied / 120 s replied).
5. Forward: IP dst, dst port, eth dst -> backend's; checksums recomputed from scratch
   (scapy). 6. Replies (backend ip:port -> client ip:port): IP src, src port, eth src ->
   VIP's / LB MAC; checksums recomputed. L2 never learns the LB MAC.
7. Backend MAC unknown: the frame (destination IP and port already the backend's) is held,
   up to 16 per backend (beyond: `no-service`), counted lb_unresolved. If no ARP request for
   that backend went out in the last second, the frame's place is taken by a 60-byte ARP request
   from the VIP, flooded to every port of the network including the ingress port (PCP 0);
   otherwise nothing leaves for it. After each frame: held frames that waited 3 s or more are
   dropped (`no-service`), then the held frames of every backend whose MAC is now known leave
   in arrival order (backends in balancer and list order), with the backend's MAC as
   destination, through L2 forwarding from their ingress port (not learned again) and egress
   with the tag they arrived with.
8. Anything else IPv4 or IPv6 to a VIP: `no-service`.
IPv6 (a VIP of that family, its backends too): rule 1 is neighbor discovery (RFC 4861): a
solicitation with hop limit 255, code 0 and a unicast target that is a VIP, from a unicast MAC
and from a unicast address or `::`, is answered by an 86-byte advertisement built from scratch
(scapy), out of the ingress port: to the solicitor, flags S and O; to ff02::1 and
33:33:00:00:00:01 with O only when the solicitor is `::` (duplicate address detection). An
advertisement with hop limit 255 and a unicast target sent to a VIP is consumed. Rule 2 is
ICMPv6 echo (128 -> 129, hop limit unchanged). Rule 3 learns from every IPv6 frame's source.
Rule 7's request is a neighbor solicitation from the VIP to the backend's solicited-node
group (86 bytes, hop limit 255, a source link-layer address option).
Decisions where the brief was silent: an ARP reply whose target IP is a VIP is consumed
(not forwarded; not a drop); L2 learns the arriving source MAC of every frame the LB
answers, consumes or replaces (it came from that host on that port) but nothing from
replies whose source became the LB MAC.

Deterministic: fixed timestamps, ISNs and IP ids. Run from anywhere.
"""

import ipaddress
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_replay_fixtures as l2  # noqa: E402  (VLAN classification, L2 Switch, egress, pcap)
import gen_firewall_fixtures as fw  # noqa: E402  (firewall model, Builder/Host, TCP state machine)

from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import Ether  # noqa: E402

US = fw.US
TCP_P, UDP_P, ICMP_P = fw.TCP_P, fw.UDP_P, fw.ICMP_P
ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
ICMP6_P = 58
u16 = fw.u16


# --------------------------------------------------------------------------
# Topology with load balancers (and optionally a firewall)
# --------------------------------------------------------------------------

class Backend:
    def __init__(self, address, weight=1, explicit_weight=False):
        ip, port = address.rsplit(":", 1)
        self.address = address
        self.ip = ipaddress.ip_address(ip.strip("[]"))
        self.port = int(port)
        self.weight = weight
        self.explicit_weight = explicit_weight


class LoadBalancer:
    def __init__(self, name, network, vip, port, proto, mac, backends, affinity=None):
        self.name, self.network, self.port, self.proto, self.mac = name, network, port, proto, mac
        self.affinity = affinity                  # seconds, or None
        self.last = {}                            # client address -> (backend index, time)
        self.vip = ipaddress.ip_address(vip)
        self.proto_num = fw.PROTO_NUM[proto]
        self.backends = []
        for b in backends:
            if isinstance(b, str):
                self.backends.append(Backend(b))
            else:
                self.backends.append(Backend(b["address"], b["weight"], True))
        self.current = [0] * len(self.backends)   # smooth WRR current weights
        self.picks = []                           # indexes chosen, in order

    def pick(self):
        """nginx smooth weighted round robin; ties go to the first in list order."""
        total = 0
        best = None
        for i, b in enumerate(self.backends):
            self.current[i] += b.weight
            total += b.weight
            if best is None or self.current[i] > self.current[best]:
                best = i
        self.current[best] -= total
        self.picks.append(best)
        return best

    def yaml(self):
        lines = ["  %s:" % self.name, "    network: %s" % self.network, "    vip: %s" % self.vip,
                 "    port: %d" % self.port, "    proto: %s" % self.proto, '    mac: "%s"' % self.mac,
                 "    backends:"]
        for b in self.backends:
            if b.explicit_weight:
                lines.append('      - { address: "%s", weight: %d }' % (b.address, b.weight))
            else:
                lines.append('      - "%s"' % b.address if b.address.startswith("[") else "      - %s" % b.address)
        if self.affinity is not None:
            lines.append("    affinity: %d" % self.affinity)
        return lines

    def choose(self, client, now):
        """Rule 4b: with affinity, the client's last backend if its last new connection was less
        than `affinity` seconds ago (and at or after it: time never runs backwards here); else
        round robin. Either way the choice becomes the client's last."""
        if self.affinity is not None and client in self.last:
            index, then = self.last[client]
            if 0 <= now - then < self.affinity * US:
                self.last[client] = (index, now)
                self.picks.append(index)
                return index
        index = self.pick()
        if self.affinity is not None:
            self.last[client] = (index, now)
        return index


class LbTopology(fw.FwTopology):
    def __init__(self, name, ports, lbs, firewall=None, networks=(("lan", 10),)):
        l2.Topology.__init__(self, name, list(networks), ports)
        self.firewall = firewall
        self.lbs = lbs

    def yaml(self):
        base = fw.FwTopology.yaml(self) if self.firewall else l2.Topology.yaml(self)
        lines = ["", "load_balancers:"]
        for lb in self.lbs:
            lines += lb.yaml()
        return base + "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Rewrites: scapy recomputes every checksum from scratch (the switch updates them
# incrementally; this is the independent check).
# --------------------------------------------------------------------------

def ip4(b):
    return ipaddress.IPv4Address(bytes(b))


def rewrite(stripped, eth_src=None, eth_dst=None, ip_src=None, ip_dst=None, sport=None, dport=None):
    p = Ether(stripped)
    if eth_src is not None:
        p.src = eth_src
    if eth_dst is not None:
        p.dst = eth_dst
    v6 = u16(stripped, 12) == ETH_IPV6
    ip = p[IPv6] if v6 else p[IP]
    if ip_src is not None:
        ip.src = str(ip_src)
    if ip_dst is not None:
        ip.dst = str(ip_dst)
    l4 = p[TCP] if TCP in p else p[UDP]
    if sport is not None:
        l4.sport = sport
    if dport is not None:
        l4.dport = dport
    if not v6:
        del ip.chksum
    del l4.chksum
    out = bytes(p)
    assert len(out) == len(stripped)
    # Only the rewritten fields and the checksums may differ.
    if v6:
        l4o = 14 + 40
        allowed = set(range(0, 12)) | set(range(22, 54)) | set(range(l4o, l4o + 4))
    else:
        ihl = (stripped[14] & 0x0F) * 4
        l4o = 14 + ihl
        allowed = set(range(0, 12)) | set(range(24, 26)) | set(range(26, 34)) | set(range(l4o, l4o + 4))
    allowed |= set(range(l4o + 16, l4o + 18)) if TCP in p else set(range(l4o + 6, l4o + 8))
    assert all(out[i] == stripped[i] for i in range(len(out)) if i not in allowed)
    return out


def arp_answer(stripped, lb_mac, vip):
    """Rule 1: the ARP reply built in place of the request (padding kept)."""
    req_sha, req_spa = stripped[22:28], stripped[28:32]
    arp = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 2) + l2.mac_bytes(lb_mac) + vip.packed + req_sha + req_spa
    return stripped[6:12] + l2.mac_bytes(lb_mac) + stripped[12:14] + arp + stripped[42:]


def echo_answer(stripped, lb_mac):
    """Rule 2: the echo reply built in place of the request."""
    p = Ether(stripped)
    p.dst, p.src = p.src, lb_mac
    old_sum = p[IP].chksum
    p[IP].src, p[IP].dst = p[IP].dst, p[IP].src
    p[ICMP].type = 0
    del p[IP].chksum
    del p[ICMP].chksum
    out = bytes(p)
    assert len(out) == len(stripped)
    assert Ether(out)[IP].chksum == old_sum and Ether(out)[IP].ttl == Ether(stripped)[IP].ttl
    return out


def echo6_answer(stripped, lb_mac):
    """Rule 2 for IPv6: the echo reply built in place of the request."""
    p = Ether(stripped)
    p.dst, p.src = p.src, lb_mac
    p[IPv6].src, p[IPv6].dst = p[IPv6].dst, p[IPv6].src
    request = p[ICMPv6EchoRequest]
    reply = ICMPv6EchoReply(code=request.code, id=request.id, seq=request.seq, data=request.data)
    request.underlayer.remove_payload()
    out = bytes(p / reply)
    assert len(out) == len(stripped) and Ether(out)[IPv6].hlim == Ether(stripped)[IPv6].hlim
    return out


def neighbor_answer(stripped, lb_mac, vip):
    """Rule 1 for IPv6: the VIP's advertisement, to the solicitor (or to all nodes for DAD)."""
    solicitor = ipaddress.IPv6Address(stripped[22:38])
    detecting = solicitor == ipaddress.IPv6Address("::")
    eth_dst = "33:33:00:00:00:01" if detecting else l2.mac_text(stripped[6:12])
    out = bytes(Ether(dst=eth_dst, src=lb_mac) /
                IPv6(src=str(vip), dst="ff02::1" if detecting else str(solicitor), hlim=255) /
                ICMPv6ND_NA(R=0, S=0 if detecting else 1, O=1, tgt=str(vip)) / ICMPv6NDOptDstLLAddr(lladdr=lb_mac))
    assert len(out) == 86
    return out


def solicitation_from_vip(lb, backend_ip):
    """Rule 7 for IPv6: a neighbor solicitation from the VIP to the backend's group."""
    t = backend_ip.packed
    group = "ff02::1:ff%02x:%02x%02x" % (t[13], t[14], t[15])
    out = bytes(Ether(dst="33:33:ff:%02x:%02x:%02x" % (t[13], t[14], t[15]), src=lb.mac) /
                IPv6(src=str(lb.vip), dst=group, hlim=255) / ICMPv6ND_NS(tgt=str(backend_ip)) /
                ICMPv6NDOptSrcLLAddr(lladdr=lb.mac))
    assert len(out) == 86
    return out


def unicast6(address):
    return not (address.is_unspecified or address.is_multicast)


def arp_from_vip(lb, backend_ip):
    """Rule 7: the ARP request from the VIP, 42 bytes + 18 zero bytes."""
    raw = (l2.mac_bytes(l2.BCAST) + l2.mac_bytes(lb.mac) + struct.pack("!H", ETH_ARP) +
           struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 1) + l2.mac_bytes(lb.mac) + lb.vip.packed +
           b"\x00" * 6 + backend_ip.packed)
    assert len(raw) == 42
    return raw + b"\x00" * 18


# --------------------------------------------------------------------------
# The load-balancer oracle
# --------------------------------------------------------------------------

class LbConn:
    def __init__(self, lb, client, cport, index, now):
        self.lb, self.client, self.cport, self.index = lb, client, cport, index
        self.track = fw.Conn(lb.proto_num, client, cport, lb.vip, lb.port, now)

    @property
    def backend(self):
        return self.lb.backends[self.index]


class LbStage:
    def __init__(self, lbs):
        self.lbs = lbs
        self.timeouts = dict(fw.DEFAULT_TIMEOUTS)
        self.backend_mac = {}   # (network, IPv4Address) -> mac text
        self.conns = {}         # (network, proto, client, cport, vip, vport) -> LbConn
        self.unresolved = 0
        self.held = {}          # (network, IPv4Address) -> [(held_at, port, frame as it arrived, rewritten)]
        self.asked = {}         # (network, IPv4Address) -> time of the last ARP request
        self.released = self.expired = 0

    def is_backend(self, net, address):
        return any(lb.network == net and any(b.ip == address for b in lb.backends) for lb in self.lbs)

    def vip_lbs(self, net, address):
        return [lb for lb in self.lbs if lb.network == net and lb.vip == address]

    def live(self, key, now):
        c = self.conns.get(key)
        if c is not None and now - c.track.last_seen >= self.timeouts[c.track.timeout_name()] * US:
            del self.conns[key]
            return None
        return c

    # rule 3
    def learn(self, net, stripped):
        et = u16(stripped, 12)
        if et == ETH_ARP and len(stripped) >= 42 and stripped[14:20] == bytes([0, 1, 8, 0, 6, 4]):
            spa = ip4(stripped[28:32])
            if self.is_backend(net, spa):
                self.backend_mac[(net, spa)] = l2.mac_text(stripped[22:28])
        elif et == ETH_IPV4:
            src = ip4(stripped[26:30])
            if self.is_backend(net, src):
                self.backend_mac[(net, src)] = l2.mac_text(stripped[6:12])
        elif et == ETH_IPV6 and len(stripped) >= 54:
            src = ipaddress.IPv6Address(stripped[22:38])
            if self.is_backend(net, src):
                self.backend_mac[(net, src)] = l2.mac_text(stripped[6:12])

    def reply_conn(self, now, net, pkt):
        """The LB connection whose reply this packet (backend ip:port -> client ip:port) is."""
        if pkt is None or pkt.proto not in (TCP_P, UDP_P) or pkt.frag_off:
            return None
        for key in list(self.conns):
            c = self.live(key, now)
            if (c is not None and c.lb.network == net and c.lb.proto_num == pkt.proto and
                    c.backend.ip == pkt.src and c.backend.port == pkt.sport and
                    c.client == pkt.dst and c.cport == pkt.dport):
                return c
        return None

    def firewall_view(self, now, net, stripped):
        """What the firewall sees: an LB reply looks like it comes from VIP:port (rule 9)."""
        if u16(stripped, 12) != ETH_IPV4:
            return stripped
        c = self.reply_conn(now, net, fw.parse_ip(stripped[14:]))
        if c is None:
            return stripped
        b = bytearray(stripped)
        b[26:30] = c.lb.vip.packed
        ihl = (b[14] & 0x0F) * 4
        b[14 + ihl:16 + ihl] = struct.pack("!H", c.lb.port)
        return bytes(b)

    def step(self, conn, direction, pkt, now):
        """Advance the connection's tracking state; 'reopen' for a SYN on TIME_WAIT/CLOSE."""
        t = conn.track
        if t.proto == TCP_P:
            try:
                if fw.Firewall.tcp_step(t, direction, pkt.flags) == "reopen":
                    return "reopen"
            except l2.Drop:
                pass            # the LB does not police TCP states inside a connection
        elif direction == "reply":
            t.replied = True
        t.last_seen = now
        return None

    def handle(self, now, net, stripped):
        """('forward', frame, source_learnable) | ('answer', frame) | ('consume', None) |
        ('flood', ARP request, (backend key, frame to hold)) | ('hold', None, (backend key, frame to hold))."""
        et = u16(stripped, 12)
        if et == ETH_ARP:
            if len(stripped) >= 42 and stripped[14:20] == bytes([0, 1, 8, 0, 6, 4]):
                op, tpa = u16(stripped, 20), ip4(stripped[38:42])
                lbs = self.vip_lbs(net, tpa)
                if lbs and op == 1:
                    return "answer", arp_answer(stripped, lbs[0].mac, tpa)
                if lbs and op == 2:
                    return "consume", None
            return "forward", stripped, True
        if et == ETH_IPV6 and len(stripped) >= 14 + 40 + 24 and stripped[20] == ICMP6_P and stripped[54] in (135, 136):
            hlim, code = stripped[21], stripped[55]
            target = ipaddress.IPv6Address(stripped[62:78])
            if hlim == 255 and code == 0 and unicast6(target):
                if stripped[54] == 136:
                    if self.vip_lbs(net, ipaddress.IPv6Address(stripped[38:54])):
                        return "consume", None
                else:
                    lbs = self.vip_lbs(net, target)
                    solicitor = ipaddress.IPv6Address(stripped[22:38])
                    if lbs and not stripped[6] & 1 and (unicast6(solicitor) or solicitor.is_unspecified):
                        return "answer", neighbor_answer(stripped, lbs[0].mac, target)
            return "forward", stripped, True
        if et not in (ETH_IPV4, ETH_IPV6):
            return "forward", stripped, True
        pkt = fw.parse_ip(stripped[14:])
        c = self.reply_conn(now, net, pkt)
        if c is not None:                                   # rule 6
            self.step(c, "reply", pkt, now)
            return "forward", rewrite(stripped, eth_src=c.lb.mac, ip_src=c.lb.vip, sport=c.lb.port), False
        lbs = self.vip_lbs(net, pkt.dst)
        if not lbs:
            return "forward", stripped, True
        served = [lb for lb in lbs if lb.proto_num == pkt.proto and lb.port == pkt.dport and not pkt.frag_off]
        if not served:
            if pkt.proto == ICMP_P and pkt.itype == 8 and not pkt.frag_off:
                return "answer", echo_answer(stripped, lbs[0].mac)     # rule 2
            if pkt.proto == ICMP6_P and pkt.itype == 128:
                return "answer", echo6_answer(stripped, lbs[0].mac)
            raise l2.Drop("no-service")                             # rule 8
        lb = served[0]
        key = (net, pkt.proto, pkt.src, pkt.sport, lb.vip, lb.port)
        c = self.live(key, now)
        if c is not None and self.step(c, "original", pkt, now) == "reopen":
            c = None
        if c is None:                                               # rule 4
            if pkt.proto == TCP_P and (pkt.flags & (fw.SYN | fw.ACK | fw.RST | fw.FIN)) != fw.SYN:
                raise l2.Drop("invalid")
            c = LbConn(lb, pkt.src, pkt.sport, lb.choose(pkt.src, now), now)
            self.conns[key] = c
        b = c.backend
        bmac = self.backend_mac.get((net, b.ip))
        if bmac is None:                                            # rule 7
            self.unresolved += 1
            key = (net, b.ip)
            if len(self.held.get(key, [])) >= 16:
                raise l2.Drop("no-service")
            held = (key, rewrite(stripped, ip_dst=b.ip, dport=b.port))
            last = self.asked.get(key)
            if last is not None and 0 <= now - last < US:
                return "hold", None, held
            self.asked[key] = now
            return "flood", (solicitation_from_vip if b.ip.version == 6 else arp_from_vip)(lb, b.ip), held
        return "forward", rewrite(stripped, eth_dst=bmac, ip_dst=b.ip, dport=b.port), True   # rule 5


class LbSwitch(l2.Switch):
    def __init__(self, topo):
        super().__init__(topo)
        self.fw = fw.Firewall(topo.firewall) if topo.firewall else None
        self.lb = LbStage(topo.lbs)
        self.lb_macs = {l2.mac_bytes(lb.mac) for lb in topo.lbs}

    def learn(self, net, src, pname, now):
        if src in self.lb_macs:
            return              # the switch never learns its own LB MAC on a port
        super().learn(net, src, pname, now)

    def process(self, now, pname, frame):
        try:
            net, stripped, pcp, dei, had_tag = l2.classify(self.topo, pname, frame)
            self.lb.learn(net, stripped)
            if self.fw is not None:
                self.fw.inspect(now, net, self.lb.firewall_view(now, net, stripped))
            result = self.lb.handle(now, net, stripped)
        except l2.Drop as d:
            self.drops[d.reason] = self.drops.get(d.reason, 0) + 1
            return
        kind, out = result[0], result[1]
        if kind in ("hold", "flood"):
            key, rewritten = result[2]
            self.lb.held.setdefault(key, []).append((now, pname, frame, rewritten))
        if kind == "forward":
            if not result[2]:
                assert out[6:12] in self.lb_macs
            # Back into the L2 oracle with the arriving tag (it classifies again, same result).
            super().process(now, pname, out[:12] + frame[12:16] + out[12:] if had_tag else out)
            return
        src = stripped[6:12]
        if not src[0] & 1:
            self.learn(net, src, pname, now)
        if kind == "hold":
            return
        if kind == "answer":
            self.out[pname].append((now, l2.egress(self.topo, pname, net, out, pcp, dei)))
        elif kind == "flood":
            for p, _ in self.topo.ports:
                if net in self.topo.port_networks(p):
                    self.out[p].append((now, l2.egress(self.topo, p, net, out, 0, 0)))

    def after_frame(self, now):
        """Rule 7's end of batch: expiry, then release."""
        for queue in self.lb.held.values():
            while queue and 0 <= now - queue[0][0] and now - queue[0][0] >= 3 * US:
                queue.pop(0)
                self.lb.expired += 1
                self.drops["no-service"] = self.drops.get("no-service", 0) + 1
        for lb in self.lb.lbs:
            for b in lb.backends:
                key = (lb.network, b.ip)
                bmac = self.lb.backend_mac.get(key)
                queue = self.lb.held.get(key)
                while bmac is not None and queue:
                    _, pname, frame, rewritten = queue.pop(0)
                    self.lb.released += 1
                    out = l2.mac_bytes(bmac) + rewritten[6:]
                    had_tag = u16(frame, 12) in (l2.TPID_8021Q, l2.TPID_8021AD)
                    super().process(now, pname, out[:12] + frame[12:16] + out[12:] if had_tag else out, learn=False)


# --------------------------------------------------------------------------
# Independent checksum verification of every frame written
# --------------------------------------------------------------------------

def csum(data):
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def verify_checksums(frame):
    off = 12
    while u16(frame, off) in (l2.TPID_8021Q, l2.TPID_8021AD):
        off += 4
    if u16(frame, off) != ETH_IPV4:
        return
    p = frame[off + 2:]
    ihl = (p[0] & 0x0F) * 4
    total = u16(p, 2)
    assert csum(p[:ihl]) == 0xFFFF, "bad IPv4 header checksum"
    if u16(p, 6) & 0x3FFF:
        return
    l4 = p[ihl:total]
    proto = p[9]
    if proto in (TCP_P, UDP_P):
        pseudo = p[12:20] + struct.pack("!BBH", 0, proto, len(l4))
        if not (proto == UDP_P and u16(l4, 6) == 0):
            assert csum(pseudo + l4) == 0xFFFF, "bad L4 checksum"
    elif proto == ICMP_P:
        assert csum(l4) == 0xFFFF, "bad ICMP checksum"


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def emit(name, topo, frames, readme):
    """frames: list of (offset_seconds, port, bytes); 3..40 frames, distinct offsets, >= 60 bytes."""
    for _, _, raw in frames:
        verify_checksums(raw)
    sw = LbSwitch(topo)
    inputs = l2.feed(name, topo, frames, sw, max_frames=40, min_length=60)
    for recs in sw.out.values():
        for _, raw in recs:
            assert len(raw) >= 60
            verify_checksums(raw)
    names = {}
    for lb in topo.lbs:
        for i, b in enumerate(lb.backends):
            names[(lb.name, i)] = BACKEND_PORT.get(str(b.ip), b.address)
    sequence = " ".join(names[(lb.name, i)] for lb in topo.lbs for i in lb.picks)
    drops = {k: v for k, v in sorted(sw.drops.items()) if v}
    l2.write_scenario(os.path.join(l2.OUT_ROOT, name), topo, inputs, sw.out,
                      {"drops": drops, "lb_unresolved": sw.lb.unresolved,
                       "lb_released": sw.lb.released, "lb_expired": sw.lb.expired},
                      readme.format(sequence=sequence, unresolved=sw.lb.unresolved))
    return sw


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

LB_MAC = "02:00:00:00:01:00"
VIP = "10.0.10.100"
C = fw.Host("c", "02:00:00:00:10:05", "10.0.10.5")
B1 = fw.Host("b1", "02:00:00:00:10:11", "10.0.10.11")
B2 = fw.Host("b2", "02:00:00:00:10:12", "10.0.10.12")
T = fw.Host("t", "02:00:00:00:10:20", "10.0.10.20")
V = fw.Host(None, LB_MAC, VIP)            # the VIP as a client sees it
BACKEND_PORT = {B1.ip: "b1", B2.ip: "b2"}

HTTP_GET = b"GET / HTTP/1.1\r\nHost: 10.0.10.100\r\n\r\n"
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def web_lb(proto="tcp", port=80, backends=None, affinity=None):
    return LoadBalancer("web" if proto == "tcp" else "dns", "lan", VIP, port, proto, LB_MAC,
                        backends or ["10.0.10.11:8080", "10.0.10.12:8080"], affinity)


def lb_topo(name, lb, firewall=None, with_trunk=False):
    ports = [("c", l2.access("t-c", "lan")), ("b1", l2.access("t-b1", "lan")), ("b2", l2.access("t-b2", "lan"))]
    if with_trunk:
        ports.append(("t", l2.trunk("t-t", ["lan"])))
    return LbTopology(name, ports, [lb], firewall=firewall)


def gratuitous(h):
    return l2.arp_request(h.mac, h.ip, h.ip)


class Flow:
    """One TCP conversation through the VIP: the client talks to VIP:vport, the backend
    answers from its own ip:bport (what each really sends on the wire)."""

    def __init__(self, b, client, cport, backend, bport=8080, vport=80, cisn=1000000, sisn=5000000, vip=None):
        self.b, self.cli, self.cport, self.bk, self.bport, self.vport = b, client, cport, backend, bport, vport
        self.vip = vip or V
        self.nxt = {"c": cisn, "s": sisn}

    def send(self, side, flags, data=b"", advance=True):
        other = "s" if side == "c" else "c"
        seq = self.nxt[side] if advance else self.nxt[side] - ("S" in flags) - len(data)
        ack = self.nxt[other] if "A" in flags else 0
        if advance:
            self.nxt[side] = seq + len(data) + ("S" in flags) + ("F" in flags)
        if side == "c":
            return self.b.tcp(self.cli, self.vip, self.cport, self.vport, flags, seq, ack, data)
        return self.b.tcp(self.bk, self.cli, self.bport, self.cport, flags, seq, ack, data)

    def c(self, flags, data=b"", **kw):
        return self.send("c", flags, data, **kw)

    def s(self, flags, data=b"", **kw):
        return self.send("s", flags, data, **kw)


def s_arp_vip():
    topo = lb_topo("lb-arp-vip", web_lb(), with_trunk=True)
    b = fw.Builder()
    frames = [
        (0.0, "c", l2.arp_request(C.mac, C.ip, VIP)),                          # answered out of c, untagged
        (0.1, "t", l2.arp_request(T.mac, T.ip, VIP, tags=[l2.q(10, pcp=3)])),  # answered out of t, VID 10 PCP 3
        (0.2, "c", b.echo(C, V, 0x5151, 1)),                                   # echo answered out of c
        (0.3, "t", l2.pad60(bytes(Ether(src=T.mac, dst=LB_MAC) / l2.Dot1Q(vlan=10, prio=5) /
                                   b.ip(T, V) / ICMP(type=8, id=0x5252, seq=1) / b"tapestry-ping-0001"))),
        (0.4, "c", l2.arp_request(C.mac, C.ip, B1.ip)),                        # not a VIP: floods b1, b2, t
        (0.401, "b1", b.arp_rep(B1, C)),                                       # c only
    ]
    return emit("lb-arp-vip", topo, frames,
                "The switch answers ARP requests for the VIP in place with the LB MAC (untagged on an access port, tagged VID 10 PCP 3 on the trunk it came from) and ICMP echo to the VIP out of the ingress port; ARP for other addresses is switched normally.")


def s_round_robin():
    topo = lb_topo("lb-round-robin", web_lb())
    b = fw.Builder()
    frames = [
        (0.0, "b1", gratuitous(B1)),                        # floods c, b2; b1's MAC learned (L2 + LB)
        (0.1, "b2", l2.arp_request(B2.mac, B2.ip, C.ip)),   # floods c, b1
    ]
    for i in range(6):
        bk = (B1, B2)[i % 2]
        f = Flow(b, C, 50001 + i, bk, cisn=1000000 * (i + 1), sisn=5000000 + 1000000 * i)
        t = 1.0 + i
        frames += [(t, "c", f.c("S")), (t + 0.001, bk.port, f.s("SA")), (t + 0.002, "c", f.c("A"))]
    return emit("lb-round-robin", topo, frames,
                "Six TCP connections to VIP:80 from ports 50001-50006 go round robin to {sequence} (dst IP/port/MAC rewritten), SYN+ACKs come back rewritten to VIP:80 and the LB MAC, and each ACK follows its connection's backend.")


def s_udp():
    topo = lb_topo("lb-udp", web_lb("udp", 53, ["10.0.10.11:5353", "10.0.10.12:5353"]))
    b = fw.Builder()
    frames = [(0.0, "b1", gratuitous(B1)), (0.1, "b2", gratuitous(B2))]
    for i in range(4):
        bk = (B1, B2)[i % 2]
        t = 1.0 + i
        frames += [(t, "c", b.udp(C, V, 40001 + i, 53, b"query-%d" % i)),
                   (t + 0.001, bk.port, b.udp(bk, C, 5353, 40001 + i, b"answer-%d" % i))]
    frames += [
        (5.0, "c", b.udp(C, V, 40002, 53, b"query-1-again")),       # same flow: b2 again (sticky)
        (5.001, "b2", b.udp(B2, C, 5353, 40002, b"answer-1-again")),
        (130.0, "c", b.udp(C, V, 40002, 53, b"query-1-late")),      # 125 s idle (> 120 s replied): new, next pick b1
        (130.001, "b1", b.udp(B1, C, 5353, 40002, b"answer-1-late")),
    ]
    return emit("lb-udp", topo, frames,
                "UDP VIP:53 -> backends :5353: datagrams from four client ports alternate b1/b2 and answers are rewritten to VIP:53; a flow stays on its backend, and after 125 s idle (replied flows live 120 s) it is new and takes the next pick (picks: {sequence}).")


def s_weights():
    lb = web_lb(backends=[{"address": "10.0.10.11:8080", "weight": 3}, {"address": "10.0.10.12:8080", "weight": 1}])
    topo = lb_topo("lb-weights", lb)
    b = fw.Builder()
    frames = [(0.0, "b1", gratuitous(B1)), (0.1, "b2", gratuitous(B2))]
    expected = [B1, B1, B2, B1, B1, B1, B2, B1]   # smooth WRR for weights 3, 1
    for i in range(8):
        bk = expected[i]
        f = Flow(b, C, 50001 + i, bk, cisn=1000000 * (i + 1), sisn=5000000 + 1000000 * i)
        frames += [(1.0 + i, "c", f.c("S")), (1.001 + i, bk.port, f.s("SA"))]
    sw = emit("lb-weights", topo, frames,
              "Weights 3 (b1) and 1 (b2): eight new connections follow nginx's smooth weighted round robin: {sequence}; SYN+ACKs are rewritten back to the VIP.")
    assert [lb.backends[i].ip for i in lb.picks] == [ipaddress.IPv4Address(h.ip) for h in expected]
    return sw


def s_unresolved():
    topo = lb_topo("lb-unresolved", web_lb(), with_trunk=True)
    b = fw.Builder()
    f1 = Flow(b, C, 50001, B1)
    f2 = Flow(b, C, 50002, B2, cisn=2000000, sisn=6000000)
    frames = [
        (0.0, "c", f1.c("S")),                              # b1 picked, MAC unknown: ARP from VIP to c, b1, b2, t
        (0.001, "b1", fw.Builder.frame(B1, V, l2.ARP(op=2, hwsrc=B1.mac, psrc=B1.ip, hwdst=LB_MAC, pdst=VIP))),
        (1.0, "c", f1.c("S", advance=False)),               # retransmitted SYN: b1 only
        (1.001, "b1", f1.s("SA")),                          # rewritten to the VIP: c
        (1.002, "c", f1.c("A")),
        (2.0, "c", f2.c("S")),                              # b2 picked, unknown: ARP flood again
        (3.0, "c", f2.c("S", advance=False)),               # b2 still silent: another ARP
        (3.5, "b2", gratuitous(B2)),                        # b2 speaks: floods c, b1, t; learned
        (4.0, "c", f2.c("S", advance=False)),               # now to b2
        (4.001, "b2", f2.s("SA")),
    ]
    return emit("lb-unresolved", topo, frames,
                "While a backend's MAC is unknown the SYN is held and a 60-byte ARP request from the VIP takes its place, flooded to every port incl. the client's (tagged on the trunk); {unresolved} frames found their backend unresolved (lb_unresolved, not a drop); b1's ARP reply to the VIP is consumed by the switch (learned by the LB and L2, not forwarded) and the held SYN leaves to b1 with it; the retransmitted SYN goes to b1 only; b2's two held SYNs leave when it speaks (a gratuitous ARP).")


def tagged(frame, vid, pcp):
    return frame[:12] + struct.pack("!HH", l2.TPID_8021Q, (pcp << 13) | vid) + frame[12:]


def s_held():
    topo = lb_topo("lb-held", web_lb(), with_trunk=True)
    b = fw.Builder()
    f1 = Flow(b, C, 50001, B1)
    f2 = Flow(b, T, 50002, B2, cisn=2000000)
    f3 = Flow(b, C, 50003, B1, cisn=3000000, sisn=7000000)
    frames = [
        (0.0, "c", f1.c("S")),                               # b1 unknown: held; an ARP request in its place
        (0.2, "t", tagged(f2.c("S"), 10, 5)),                # b2 unknown: held (tagged, PCP 5); ARP for b2
        (0.4, "c", f3.c("S")),                               # b1 again: held; asked 0.4 s ago, so no ARP
        (0.5, "b1", fw.Builder.frame(B1, V, l2.ARP(op=2, hwsrc=B1.mac, psrc=B1.ip, hwdst=LB_MAC, pdst=VIP))),
        (0.501, "b1", f1.s("SA")),                           # both SYNs reached b1, in order; replies rewritten
        (1.3, "t", tagged(f2.c("S", advance=False), 10, 5)), # b2 still silent: held, asked again (1.1 s later)
        (3.2, "b1", f3.s("SA")),                             # after it: f2's first SYN waited 3 s, dropped
        (4.4, "c", f3.c("A")),                               # after it: the retransmission dropped too
    ]
    return emit("lb-held", topo, frames,
                "Frames for a backend whose MAC is unknown are held, not dropped: an ARP request from the VIP takes the first one's place (again only after a second), and when b1 answers the VIP both SYNs held for it leave to b1 in arrival order, rewritten; b2 never answers, so its two SYNs (tagged, from the trunk) are dropped as no-service 3 s after each arrived. {unresolved} frames found their backend unresolved.")


def s_affinity():
    topo = lb_topo("lb-affinity", web_lb(affinity=30), with_trunk=True)
    b = fw.Builder()
    frames = [(0.0, "b1", gratuitous(B1)), (0.1, "b2", gratuitous(B2))]
    flows = [
        (1.0, C, 50001, "c"), (2.0, C, 50002, "c"),     # c: b1, then b1 again (affinity)
        (3.0, T, 50003, "t"), (4.0, T, 50004, "t"),     # t: the round robin's next (b2), then b2 again
        (5.0, C, 50005, "c"),                           # c: still b1
        (40.0, T, 50006, "t"),                          # 36 s after t's last: round robin (b1, not b2)
        (41.0, C, 50007, "c"),                          # 36 s after c's last: round robin (b2, not b1)
        (60.0, C, 50008, "c"),                          # 19 s after its last: b2 by affinity (not b1)
    ]
    for i, (t, host, sport, port) in enumerate(flows):
        f = Flow(b, host, sport, B1, cisn=1000000 * (i + 1), sisn=5000000 + 1000000 * i)
        syn = f.c("S")
        frames.append((t, port, tagged(syn, 10, 0) if port == "t" else syn))
    return emit("lb-affinity", topo, frames,
                "With affinity: 30, each client's new connections go to the backend of its last one while that was under 30 s ago; the sequence of picks is {sequence}: c sticks to b1, t (on the trunk) to b2; after more than 30 s of silence each is balanced afresh by the round robin (t to b1, c to b2), and c then sticks to b2.")


def s_firewall():
    policy = {"default": "drop", "rules": [{"action": "allow", "proto": "tcp", "dst": VIP, "dport": 80}]}
    topo = lb_topo("lb-firewall", web_lb(), firewall=policy)
    b = fw.Builder()
    f1 = Flow(b, C, 50001, B1)
    ssh = Flow(b, C, 50002, B1, vport=22, cisn=2000000)
    f4 = Flow(b, C, 50004, B2, cisn=4000000, sisn=8000000)
    frames = [
        (0.0, "b1", gratuitous(B1)),                        # ARP passes under default: drop
        (0.1, "b2", gratuitous(B2)),
        (1.0, "c", f1.c("S")),                              # allowed (dst VIP:80): b1
        (1.001, "b1", f1.s("SA")),                          # reply direction of c -> VIP:80: passes
        (1.002, "c", f1.c("A")),
        (1.003, "c", f1.c("PA", HTTP_GET)),
        (1.004, "b1", f1.s("PA", HTTP_OK)),
        (2.0, "c", ssh.c("S")),                             # VIP:22: firewall (before the LB's no-service)
        (3.0, "c", b.tcp(C, B1, 50003, 8080, "S", 3000000)),  # straight to a backend: firewall
        (4.0, "c", f4.c("S")),                              # next pick b2 (dropped SYNs took none)
        (4.001, "b2", f4.s("SA")),
        (4.002, "c", f4.c("A")),
        (5.0, "b2", b.tcp(B2, C, 8080, 50009, "SA", 9000000, 9000001)),  # no connection: invalid
    ]
    return emit("lb-firewall", topo, frames,
                "Firewall (default drop, allow tcp to VIP:80) in front of the LB: it sees the packet before rewriting, so connections via the VIP work and backend replies count as the reply direction; a SYN to VIP:22 and one straight to a backend's :8080 are dropped `firewall`, an unsolicited backend SYN+ACK is `invalid`.")


def s_no_service():
    topo = lb_topo("lb-no-service", web_lb())
    b = fw.Builder()
    stray = Flow(b, C, 50001, B1)
    f = Flow(b, C, 50002, B1, cisn=2000000, sisn=6000000)
    frames = [
        (0.0, "b1", gratuitous(B1)),
        (0.1, "b2", gratuitous(B2)),
        (1.0, "c", Flow(b, C, 50010, B1, vport=443).c("S")),     # VIP:443: no-service
        (2.0, "c", b.udp(C, V, 50011, 80, b"udp-to-port-80")),   # UDP to VIP:80 (LB is tcp): no-service
        (2.5, "c", b.echo(C, V, 0x6161, 1, reply=True)),         # ICMP other than echo request: no-service
        (3.0, "c", stray.c("PA", HTTP_GET)),                     # not a SYN, no connection: invalid
        (4.0, "c", f.c("S")),                                    # first pick: b1
        (4.001, "b1", f.s("SA")),
        (5.0, "b1", b.tcp(B1, C, 8080, 50099, "SA", 7000000, 7000001)),  # not an LB connection: switched unchanged
    ]
    return emit("lb-no-service", topo, frames,
                "TCP to VIP:443, UDP to VIP:80 and an ICMP echo reply to the VIP are dropped `no-service`; a non-SYN to VIP:80 without a connection is `invalid` and takes no pick (the next SYN still gets b1); backend traffic outside LB connections is switched unchanged.")


VIP6 = "fd00:10::100"
C6 = fw.Host("c", "02:00:00:00:10:05", "fd00:10::5")
B16 = fw.Host("b1", "02:00:00:00:10:11", "fd00:10::11")
B26 = fw.Host("b2", "02:00:00:00:10:12", "fd00:10::12")
T6 = fw.Host("t", "02:00:00:00:10:20", "fd00:10::20")
V6 = fw.Host(None, LB_MAC, VIP6)


def s_ipv6():
    lb = LoadBalancer("web6", "lan", VIP6, 80, "tcp", LB_MAC, ["[fd00:10::11]:8080", "[fd00:10::12]:8080"])
    topo = lb_topo("lb-ipv6", lb, with_trunk=True)
    b = fw.Builder()
    f1 = Flow(b, C6, 50001, B16, vip=V6)
    f2 = Flow(b, C6, 50002, B26, cisn=2000000, sisn=6000000, vip=V6)
    group = "ff02::1:ff00:100"
    dad = bytes(Ether(src=C6.mac, dst="33:33:ff:00:01:00") / IPv6(src="::", dst=group, hlim=255) / ICMPv6ND_NS(tgt=VIP6))
    routed = bytes(Ether(src=C6.mac, dst="33:33:ff:00:01:00") / IPv6(src=C6.ip, dst=group, hlim=64) /
                   ICMPv6ND_NS(tgt=VIP6) / ICMPv6NDOptSrcLLAddr(lladdr=C6.mac))
    advert = bytes(Ether(src=B26.mac, dst=LB_MAC) / IPv6(src=B26.ip, dst=VIP6, hlim=255) /
                   ICMPv6ND_NA(S=1, O=1, tgt=B26.ip) / ICMPv6NDOptDstLLAddr(lladdr=B26.mac))
    frames = [
        (0.0, "c", b.ns(C6, VIP6)),                          # answered out of c: S|O, the LB MAC
        (0.1, "t", tagged(b.ns(T6, VIP6), 10, 3)),           # answered out of t, VID 10 PCP 3
        (0.2, "c", b.echo(C6, V6, 0x6161, 1)),               # ICMPv6 echo answered
        (0.3, "c", l2.pad60(dad)),                           # DAD for the VIP: answered to all nodes, O only
        (0.4, "c", routed),                                  # hop limit 64: not answered, flooded as it is
        (0.5, "b1", b.ns(B16, C6.ip)),                       # b1 speaks: learned (its IPv6 source)
        (1.0, "c", f1.c("S")),                               # b1: addresses, port and checksum rewritten
        (1.001, "b1", f1.s("SA")),                           # back from the VIP
        (1.002, "c", f1.c("A")),
        (1.003, "c", f1.c("PA", HTTP_GET)),
        (1.004, "b1", f1.s("PA", HTTP_OK)),
        (2.0, "c", f2.c("S")),                               # b2 unknown: held, solicited from the VIP
        (2.1, "b2", advert),                                 # b2 answers the VIP: consumed, the SYN leaves
        (2.101, "b2", f2.s("SA")),
        (3.0, "c", b.udp(C6, V6, 50003, 80, b"udp-to-port-80")),  # UDP to VIP:80 (the LB is tcp): no-service
        (3.1, "c", b.echo(C6, V6, 0x6262, 1, reply=True)),   # an echo reply to the VIP: no-service
    ]
    return emit("lb-ipv6", topo, frames,
                "An IPv6 VIP: neighbor solicitations for it are answered with the LB MAC (solicited and override; to all nodes for duplicate address detection; tagged on the trunk), one with hop limit 64 is not; echo is answered; two connections go to {sequence} with addresses, ports and checksums rewritten both ways (recomputed by scapy); b2's MAC is unknown, so its SYN waits while the VIP solicits it and leaves when b2's advertisement (consumed) comes; UDP and an echo reply to the VIP are no-service.")


SCENARIOS = [s_arp_vip, s_round_robin, s_udp, s_weights, s_unresolved, s_held, s_affinity, s_firewall, s_no_service, s_ipv6]


def main():
    os.makedirs(l2.OUT_ROOT, exist_ok=True)
    for fn in SCENARIOS:
        sw = fn()
        outs = {p: len(v) for p, v in sw.out.items()}
        print("%-15s out=%s drops=%s lb_unresolved=%d" % (sw.folder, outs, dict(sorted(sw.drops.items())),
                                                          sw.lb.unresolved))
    return 0


if __name__ == "__main__":
    sys.exit(main())
