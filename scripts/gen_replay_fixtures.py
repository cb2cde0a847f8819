#!/usr/bin/env python3
"""Generate the packet-replay fixtures under Tests/TapestryReplayTests/Scenarios/.

Why an independent oracle: the expected outputs of a replay test must not be
produced by the switch under test (that would only prove it agrees with itself).
This script re-implements the L2 pipeline semantics documented in docs/ (architecture.md, topology.md)
(access/trunk VLAN classification, egress tagging, MAC learning with aging, moves
and a bounded table, flooding, the hairpin / multicast-source / invalid / vlan /
no-destination drops) in a few hundred lines of plain Python, builds realistic
frames with scapy, and writes for every scenario:

    topology.yaml, in/<PORT>.pcap, expect/<PORT>.pcap (every port, possibly
    empty), expect/summary.json ({"drops": {reason: count}}, nonzero only),
    README.md (one line: what the scenario proves).

It is deterministic: fixed timestamps, no randomness, fixed pcap endianness and
snaplen, so `python3 scripts/gen_replay_fixtures.py` regenerates every file byte
for byte. Run it from anywhere; it writes relative to the repository root.
"""

import json
import re
import os
import shutil
import struct
import sys

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import PcapWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_ROOT = os.path.join(REPO, "Tests", "TapestryReplayTests", "Scenarios")

BASE_SEC = 1700000000  # every input timestamp is BASE_SEC + an offset in microseconds

TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8
ETH_IPV4 = 0x0800
BCAST = "ff:ff:ff:ff:ff:ff"


def mac(n):
    """Locally administered unicast MAC 02:00:00:00:00:NN."""
    return "02:00:00:00:00:%02x" % n


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def mac_text(raw):
    return ":".join("%02x" % b for b in raw)


# --------------------------------------------------------------------------
# Frame builders (all return bytes). Short frames are zero-padded once, at build
# time: untagged to 60 bytes, tagged to 64, so a frame stays >= 60 bytes after the
# switch removes a tag and no padding/trimming question ever arises.
# --------------------------------------------------------------------------

def pad60(raw):
    tpid = struct.unpack("!H", raw[12:14])[0]
    minimum = 64 if tpid in (TPID_8021Q, TPID_8021AD) else 60
    return raw if len(raw) >= minimum else raw + b"\x00" * (minimum - len(raw))


def tagged(l2, tags):
    """Wrap an Ether header with a list of tags (outermost first).

    tags: list of (tpid, vid, pcp, dei)."""
    pkt = l2
    for tpid, vid, pcp, dei in tags:
        cls = Dot1AD if tpid == TPID_8021AD else Dot1Q
        pkt = pkt / cls(vlan=vid, prio=pcp, id=dei)
    return pkt


def eth(src, dst, tags=(), ethertype=None):
    first_tpid = tags[0][0] if tags else ethertype
    l2 = Ether(src=src, dst=dst, type=first_tpid) if first_tpid is not None else Ether(src=src, dst=dst)
    return tagged(l2, list(tags))


def arp_request(src, sip, tip, tags=(), dst=BCAST):
    return pad60(bytes(eth(src, dst, tags) / ARP(op=1, hwsrc=src, psrc=sip, hwdst="00:00:00:00:00:00", pdst=tip)))


def arp_reply(src, sip, dst, dip, tags=()):
    return pad60(bytes(eth(src, dst, tags) / ARP(op=2, hwsrc=src, psrc=sip, hwdst=dst, pdst=dip)))


def udp(src, dst, sip, dip, sport=40000, dport=5000, payload=b"tapestry replay fixture", tags=(), ip_id=1):
    return pad60(bytes(eth(src, dst, tags) / IP(src=sip, dst=dip, id=ip_id, ttl=64) /
                       UDP(sport=sport, dport=dport) / Raw(payload)))


def icmp_echo(src, dst, sip, dip, reply=False, seq=1, tags=(), ip_id=1):
    return pad60(bytes(eth(src, dst, tags) / IP(src=sip, dst=dip, id=ip_id, ttl=64) /
                       ICMP(type=0 if reply else 8, id=0x7a70, seq=seq) / Raw(b"tapestry-ping-%02d" % seq)))


# --------------------------------------------------------------------------
# Topology model and YAML emission
# --------------------------------------------------------------------------

class Topology:
    def __init__(self, name, networks, ports, mac_aging=None, mac_table_size=None):
        self.name = name
        self.networks = networks          # list of (name, vid)
        self.ports = ports                # list of (name, spec dict)
        self.mac_aging = mac_aging
        self.mac_table_size = mac_table_size
        self.vid = dict(networks)
        self.net_by_vid = {v: n for n, v in networks}
        self.port = dict(ports)
        for pname, spec in ports:
            assert len(spec["tap"]) <= 15
            assert ("network" in spec) != ("trunk" in spec)

    def port_networks(self, pname):
        spec = self.port[pname]
        return [spec["network"]] if "network" in spec else list(spec["trunk"])

    def yaml(self):
        lines = ["name: %s" % self.name]
        if self.mac_aging is not None:
            lines.append("mac_aging: %d" % self.mac_aging)
        if self.mac_table_size is not None:
            lines.append("mac_table_size: %d" % self.mac_table_size)
        lines += ["", "networks:"]
        for n, v in self.networks:
            lines.append("  %s: { vlan: %d }" % (n, v))
        lines += ["", "ports:"]
        for pname, spec in self.ports:
            if "network" in spec:
                body = "tap: %s, network: %s" % (spec["tap"], spec["network"])
            else:
                body = "tap: %s, trunk: [%s]" % (spec["tap"], ", ".join(spec["trunk"]))
                if "native" in spec:
                    body += ", native: %s" % spec["native"]
            lines.append("  %s: { %s }" % (pname, body))
        return "\n".join(lines) + "\n"


def access(tap, network):
    return {"tap": tap, "network": network}


def trunk(tap, networks, native=None):
    spec = {"tap": tap, "trunk": list(networks)}
    if native is not None:
        spec["native"] = native
    return spec


# --------------------------------------------------------------------------
# The oracle: a straightforward model of the pipeline semantics
# --------------------------------------------------------------------------

class Drop(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def ipv4_valid(payload):
    """payload: bytes after the (accepted) L2 header of an IPv4 frame."""
    if len(payload) < 20:
        return False
    version, ihl = payload[0] >> 4, payload[0] & 0x0F
    if version != 4 or ihl < 5 or ihl * 4 > len(payload):
        return False
    total_length = struct.unpack("!H", payload[2:4])[0]
    return total_length <= len(payload)


def classify(topo, pname, frame):
    """Return (network, untagged_frame, pcp, dei, had_tag) or raise Drop."""
    if len(frame) < 14:
        raise Drop("invalid")
    spec = topo.port[pname]
    outer = struct.unpack("!H", frame[12:14])[0]
    if outer == TPID_8021Q and len(frame) < 18:
        raise Drop("invalid")
    if outer == TPID_8021AD:
        # 802.1ad outer is refused on access and trunk ports alike.
        raise Drop("vlan")
    if outer == TPID_8021Q:
        tci = struct.unpack("!H", frame[14:16])[0]
        pcp, dei, vid = tci >> 13, (tci >> 12) & 1, tci & 0x0FFF
        inner_type = struct.unpack("!H", frame[16:18])[0]
        stripped = frame[:12] + frame[16:]
        if "network" in spec:
            if vid != 0 or inner_type in (TPID_8021Q, TPID_8021AD):
                raise Drop("vlan")
            net = spec["network"]
        else:
            if vid == 0:
                if "native" not in spec:
                    raise Drop("vlan")
                net = spec["native"]
            else:
                net = topo.net_by_vid.get(vid)
                if net is None or net not in spec["trunk"]:
                    raise Drop("vlan")
        had_tag = True
    else:
        if "network" in spec:
            net = spec["network"]
        else:
            if "native" not in spec:
                raise Drop("vlan")
            net = spec["native"]
        stripped = frame
        pcp = dei = 0
        had_tag = False
    # IPv4 sanity (only when the payload after the one accepted tag is IPv4).
    if struct.unpack("!H", stripped[12:14])[0] == ETH_IPV4 and not ipv4_valid(stripped[14:]):
        raise Drop("invalid")
    return net, stripped, pcp, dei, had_tag


def egress(topo, pname, net, stripped, pcp, dei):
    spec = topo.port[pname]
    if "network" in spec or spec.get("native") == net:
        return stripped
    tci = (pcp << 13) | (dei << 12) | topo.vid[net]
    return stripped[:12] + struct.pack("!HH", TPID_8021Q, tci) + stripped[12:]


class Switch:
    def __init__(self, topo):
        self.topo = topo
        self.aging_us = (topo.mac_aging if topo.mac_aging is not None else 300) * 1_000_000
        self.table_size = topo.mac_table_size if topo.mac_table_size is not None else 8192
        self.fdb = {}  # (network, mac bytes) -> (port, last_seen_us)
        self.out = {p: [] for p, _ in topo.ports}
        self.drops = {}

    def live(self, key, now):
        entry = self.fdb.get(key)
        if entry is None:
            return None
        if now - entry[1] >= self.aging_us:
            del self.fdb[key]
            return None
        return entry

    def live_count(self, now):
        return sum(1 for _, seen in self.fdb.values() if now - seen < self.aging_us)

    def learn(self, net, src, pname, now):
        key = (net, src)
        if self.live(key, now) is None:
            for old in [k for k, (_, seen) in self.fdb.items() if now - seen >= self.aging_us]:
                del self.fdb[old]  # aged-out entries make room first
            if len(self.fdb) >= self.table_size:
                # Full: evict the least recently seen entry of the port holding the most entries
                # (ties: the port listed first), as Open vSwitch does.
                order = [p for p, _ in self.topo.ports]
                counts = {p: 0 for p in order}
                for p, _ in self.fdb.values():
                    counts[p] += 1
                fullest = max(order, key=lambda p: (counts[p], -order.index(p)))
                victim = min((k for k, (p, _) in self.fdb.items() if p == fullest), key=lambda k: self.fdb[k][1])
                del self.fdb[victim]
        self.fdb[key] = (pname, now)

    def process(self, now, pname, frame, learn=True):
        try:
            net, stripped, pcp, dei, _ = classify(self.topo, pname, frame)
            dst, src = stripped[0:6], stripped[6:12]
            if src[0] & 1:
                raise Drop("multicast-source")
            if learn:
                self.learn(net, src, pname, now)
            if dst[0] & 1:
                targets = None
            else:
                entry = self.live((net, dst), now)
                if entry is not None and entry[0] == pname:
                    raise Drop("hairpin")
                targets = [entry[0]] if entry is not None else None
            if targets is None:
                targets = [p for p, _ in self.topo.ports
                           if p != pname and net in self.topo.port_networks(p)]
                if not targets:
                    raise Drop("no-destination")
            for t in targets:
                self.out[t].append((now, egress(self.topo, t, net, stripped, pcp, dei)))
        except Drop as d:
            self.drops[d.reason] = self.drops.get(d.reason, 0) + 1


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def write_pcap(path, records):
    """records: list of (offset_us, bytes). Always Ethernet, little endian, snaplen 65535."""
    w = PcapWriter(path, linktype=1, sync=True, endianness="<", snaplen=65535)
    w.write_header(None)  # write_packet() alone would not emit the global header
    for off, raw in records:
        t = BASE_SEC * 1_000_000 + off
        w.write_packet(raw, sec=t // 1_000_000, usec=t % 1_000_000)
    w.close()


def feed(name, topo, frames, sw, max_frames, min_length=0):
    """Checks a scenario's frames (valid name, distinct timestamps, known ports, a sane count) and
    runs them through the model switch `sw` in time order. Returns the inputs per port."""
    assert re.fullmatch(r"[a-z][a-z0-9-]{0,14}", topo.name), topo.name
    offsets = [round(t * 1_000_000) for t, _, _ in frames]
    assert len(set(offsets)) == len(offsets), "%s: timestamp tie" % name
    assert 3 <= len(frames) <= max_frames, "%s: %d frames" % (name, len(frames))
    for _, p, raw in frames:
        assert p in topo.port, p
        assert len(raw) >= min_length, (name, len(raw))
    sw.folder = name
    inputs = {p: [] for p, _ in topo.ports}
    for off, _, (_, p, raw) in sorted(zip(offsets, range(len(frames)), frames)):
        inputs[p].append((off, raw))
        sw.process(off, p, raw)
        if hasattr(sw, "after_frame"):
            sw.after_frame(off)
    return inputs


def write_scenario(d, topo, inputs, outputs, summary, readme):
    """Writes one scenario folder: topology.yaml, in/, expect/ (every port), summary.json, README.md."""
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "in"))
    os.makedirs(os.path.join(d, "expect"))
    with open(os.path.join(d, "topology.yaml"), "w") as f:
        f.write(topo.yaml())
    for p in sorted(inputs):
        if inputs[p]:
            write_pcap(os.path.join(d, "in", p + ".pcap"), inputs[p])
    for p in sorted(outputs):
        write_pcap(os.path.join(d, "expect", p + ".pcap"), outputs[p])
    with open(os.path.join(d, "expect", "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write(readme.strip() + "\n")


def emit(name, topo, frames, readme, root=None):
    """frames: list of (offset_seconds, port, bytes). Offsets must be distinct."""
    sw = Switch(topo)
    inputs = feed(name, topo, frames, sw, max_frames=12)
    write_scenario(os.path.join(root or OUT_ROOT, name), topo, inputs, sw.out,
                   {"drops": dict(sorted(sw.drops.items()))}, readme)
    return sw


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

H1, H2, H3, H4, H5 = mac(1), mac(2), mac(3), mac(4), mac(5)
SHARED = "02:00:00:00:00:aa"
IP1, IP2, IP3, IP4, IP5 = "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"


def q(vid, pcp=0, dei=0):
    return (TPID_8021Q, vid, pcp, dei)


def ad(vid, pcp=0, dei=0):
    return (TPID_8021AD, vid, pcp, dei)


def three_access(name, **kw):
    return Topology(name, [("lan", 10)],
                    [("a", access("t-a", "lan")), ("b", access("t-b", "lan")), ("c", access("t-c", "lan"))], **kw)


def s_access_learning():
    topo = three_access("access-learning")
    frames = [
        (0, "a", udp(H1, H2, IP1, IP2)),                       # unknown unicast: floods b, c
        (1, "b", udp(H2, H1, IP2, IP1, 5000, 40000)),          # H1 known on a: a only
        (2, "c", arp_request(H3, IP3, IP1)),                   # broadcast: a, b
        (3, "a", arp_reply(H1, IP1, H3, IP3)),                 # c only
        (4, "a", icmp_echo(H1, H2, IP1, IP2, seq=1)),          # b only
        (5, "b", icmp_echo(H2, H1, IP2, IP1, reply=True, seq=1)),  # a only
        (6, "c", udp(H3, H2, IP3, IP2, 40001, 5000)),          # b only
    ]
    return emit("access-learning", topo, frames,
                "Access ports learn source MACs: unknown unicast and broadcast flood, known unicast goes only to the learned port.")


def s_network_isolation():
    topo = Topology("net-isolation",
                    [("red", 10), ("blue", 20)],
                    [("r1", access("t-r1", "red")), ("r2", access("t-r2", "red")),
                     ("b1", access("t-b1", "blue")), ("b2", access("t-b2", "blue"))])
    R1, R2, B1, B2 = mac(0x11), mac(0x12), mac(0x21), mac(0x22)
    frames = [
        (0, "r1", arp_request(R1, "10.1.0.1", "10.1.0.2")),    # red broadcast: r2 only
        (1, "b1", arp_request(B1, "10.2.0.1", "10.2.0.2")),    # blue broadcast: b2 only
        (2, "r2", arp_reply(R2, "10.1.0.2", R1, "10.1.0.1")),  # r1
        (3, "r1", udp(R1, B1, "10.1.0.1", "10.2.0.1")),        # B1 known only in blue: floods red (r2)
        (4, "b2", udp(B2, B1, "10.2.0.2", "10.2.0.1")),        # b1
        (5, "r1", udp(SHARED, R2, "10.1.0.9", "10.1.0.2")),    # same MAC in red on r1 -> r2
        (6, "b2", udp(SHARED, B1, "10.2.0.9", "10.2.0.1")),    # same MAC in blue on b2 -> b1 (no move)
        (7, "r2", udp(R2, SHARED, "10.1.0.2", "10.1.0.9")),    # red entry still on r1
        (8, "b1", udp(B1, SHARED, "10.2.0.1", "10.2.0.9")),    # blue entry on b2
    ]
    return emit("network-isolation", topo, frames,
                "Broadcast and unicast never cross networks; the MAC table is keyed per (network, MAC).")


def s_trunk_tagging():
    topo = Topology("trunk-tagging",
                    [("web", 10), ("db", 20), ("mgmt", 30)],
                    [("w1", access("t-w1", "web")), ("d1", access("t-d1", "db")),
                     ("m1", access("t-m1", "mgmt")),
                     ("up", trunk("t-up", ["web", "db", "mgmt"], native="mgmt")),
                     ("up2", trunk("t-up2", ["web", "db"]))])
    W1, D1, M1, X, Y, Z = mac(0x11), mac(0x21), mac(0x31), mac(0x41), mac(0x42), mac(0x43)
    frames = [
        (0, "w1", arp_request(W1, "10.10.0.1", "10.10.0.99")),                # up tag 10, up2 tag 10
        (1, "d1", arp_request(D1, "10.20.0.1", "10.20.0.99")),                # up tag 20, up2 tag 20
        (2, "m1", arp_request(M1, "10.30.0.1", "10.30.0.99")),                # up untagged (native)
        (3, "up", arp_reply(X, "10.10.0.99", W1, "10.10.0.1", tags=[q(10)])),  # w1 untagged
        (4, "up", icmp_echo(Y, M1, "10.30.0.99", "10.30.0.1")),               # native: m1 untagged
        (5, "up", udp(X, W1, "10.99.0.1", "10.10.0.1", tags=[q(99)])),        # VID 99 not listed: vlan
        (6, "up2", udp(Z, D1, "10.20.0.99", "10.20.0.1")),                    # untagged, no native: vlan
        (7, "up2", udp(Z, D1, "10.20.0.99", "10.20.0.1", tags=[q(20)])),      # d1 untagged
        (8, "d1", udp(D1, Z, "10.20.0.1", "10.20.0.99", 5000, 40000)),        # up2 only, tag 20
        (9, "w1", udp(W1, X, "10.10.0.1", "10.10.0.99")),                     # up only, tag 10
    ]
    return emit("trunk-tagging", topo, frames,
                "Trunks tag egress with the network's VID (native untagged), untag toward access ports, and drop unlisted VIDs and untagged frames without a native network.")


def s_access_vlan_drops():
    topo = Topology("access-vlan",
                    [("lan", 10), ("other", 20)],
                    [("a", access("t-a", "lan")), ("b", access("t-b", "lan")),
                     ("up", trunk("t-up", ["lan", "other"]))])
    frames = [
        (0, "a", udp(H3, H2, IP3, IP2, tags=[q(10)])),                 # own VID: vlan
        (1, "a", udp(H3, H2, IP3, IP2, tags=[q(20)])),                 # other VID: vlan
        (2, "a", udp(H3, H2, IP3, IP2, tags=[ad(10), q(10)])),         # 802.1ad outer: vlan
        (3, "a", udp(H3, H2, IP3, IP2, tags=[q(10), q(20)])),          # double 802.1Q: vlan
        (4, "a", udp(H3, H2, IP3, IP2, tags=[q(0), q(10)])),           # double tag, outer VID 0: vlan
        (5, "a", icmp_echo(H1, H2, IP1, IP2, tags=[q(0, pcp=5)])),     # priority tag: b untagged, up tag 10 pcp 5
        (6, "b", icmp_echo(H2, H1, IP2, IP1, reply=True)),             # a only
        (7, "b", udp(H2, H3, IP2, IP3)),                               # H3 never learned: floods a, up
    ]
    return emit("access-vlan-drops", topo, frames,
                "Access ports drop any frame tagged with a nonzero VID or double-tagged (unlearned), but accept priority-tagged frames and keep their PCP on trunk egress.")


def s_pcp_preserve():
    topo = Topology("pcp-preserve",
                    [("lan", 10), ("dmz", 20)],
                    [("a", access("t-a", "lan")),
                     ("up1", trunk("t-up1", ["lan", "dmz"])),
                     ("up2", trunk("t-up2", ["lan", "dmz"])),
                     ("up3", trunk("t-up3", ["lan", "dmz"], native="lan"))])
    frames = [
        (0, "up1", udp(H1, H2, IP1, IP2, tags=[q(10, pcp=6, dei=1)])),  # up2 tag10 pcp6 dei1, a/up3 untagged
        (1, "a", udp(H2, H1, IP2, IP1, 5000, 40000)),                   # up1 tag10 pcp0 dei0
        (2, "up2", udp(H3, H4, IP3, IP4, tags=[q(20, pcp=3)])),         # up1 and up3 tag20 pcp3
        (3, "up1", udp(H4, H3, IP4, IP3, 5000, 40000, tags=[q(20)])),   # up2 tag20 pcp0
        (4, "up1", udp(H1, H2, IP1, IP2, tags=[q(10, pcp=7)])),         # a untagged
        (5, "up3", udp(H5, H1, IP5, IP1, tags=[q(0, pcp=4, dei=1)])),   # priority tag on native: up1 tag10 pcp4 dei1
    ]
    return emit("pcp-preserve", topo, frames,
                "Trunk egress keeps the PCP/DEI of the arriving tag (priority tags included) and uses PCP 0 for frames that arrived untagged.")


def s_mac_aging():
    topo = three_access("mac-aging", mac_aging=10)
    frames = [
        (0, "a", udp(H1, H2, IP1, IP2)),                 # flood b, c; H1 learned at 0
        (5, "b", udp(H2, H1, IP2, IP1, 5000, 40000)),    # a only; H2 learned at 5
        (14.5, "c", udp(H3, H2, IP3, IP2)),              # 9.5 s after: b only
        (15, "c", udp(H3, H2, IP3, IP2, ip_id=2)),       # exactly 10 s: aged, floods a, b
        (20, "c", udp(H3, H1, IP3, IP1)),                # 20 s: H1 aged, floods a, b
        (21, "a", udp(H1, H3, IP1, IP3, 5000, 40000)),   # H3 learned at 14.5/15/20: c only
    ]
    return emit("mac-aging", topo, frames,
                "With mac_aging 10, an entry is used while less than 10 s old and is gone at exactly 10 s, so traffic to it floods again.")


def s_hairpin():
    topo = Topology("hairpin", [("lan", 10)],
                    [("a", access("t-a", "lan")), ("b", access("t-b", "lan"))])
    frames = [
        (0, "a", arp_request(H1, IP1, IP3)),             # b
        (1, "a", udp(H2, H1, IP2, IP1)),                 # H1 on a == ingress: hairpin (H2 still learned)
        (2, "b", udp(H3, H2, IP3, IP2)),                 # H2 learned on a before the hairpin drop: a only
        (3, "a", udp(H1, H2, IP1, IP2)),                 # hairpin
    ]
    return emit("hairpin", topo, frames,
                "A frame whose destination was learned on its own ingress port is dropped (hairpin), after its source was learned.")


def s_multicast_source():
    topo = three_access("mcast-source")
    MC = "03:00:00:00:00:01"
    frames = [
        (0, "a", udp(MC, H2, IP1, IP2)),                                 # multicast source: dropped
        (1, "a", arp_request(BCAST, IP1, IP2)),                          # broadcast source: dropped
        (2, "b", udp(H2, MC, IP2, "10.255.255.255")),                    # multicast dst floods a, c
        (3, "a", udp(H1, "01:00:5e:00:00:fb", IP1, "224.0.0.251", 5353, 5353)),  # IPv4 multicast floods b, c
        (4, "c", udp(H3, H1, IP3, IP1)),                                 # a only
    ]
    return emit("multicast-source", topo, frames,
                "Frames with a multicast or broadcast source MAC are dropped unlearned, while multicast destinations (e.g. 01:00:5e:00:00:fb) flood.")


def s_mac_table_full():
    topo = three_access("mac-table-full", mac_aging=10, mac_table_size=4)
    IP4, IP5 = "10.0.0.4", "10.0.0.5"
    frames = [
        (0, "a", arp_request(H1, IP1, IP2)),             # b, c; H1 on a
        (1, "b", arp_reply(H2, IP2, H1, IP1)),           # a; H2 on b
        (2, "c", udp(H3, H1, IP3, IP1)),                 # a; H3 on c
        (3, "c", udp(H4, H1, IP4, IP1)),                 # a; H4 on c: 4 entries, full
        (4, "c", udp(H5, H1, IP5, IP1)),                 # a; c holds the most: its oldest, H3, is evicted
        (5, "a", udp(H1, H2, IP1, IP2)),                 # other ports' entries are untouched: b only
        (6, "a", udp(H1, H3, IP1, IP3, 5000, 40000)),    # H3 was evicted: floods b, c
        (7, "b", udp(H2, H4, IP2, IP4)),                 # H4 still known: c only
        (30, "c", arp_request(H3, IP3, IP1)),            # all aged out: H3 learned again; floods a, b
        (31, "a", udp(H1, H3, IP1, IP3, 5000, 40000)),   # c only
    ]
    return emit("mac-table-full", topo, frames,
                "With mac_table_size 4, a port that brings new MACs to a full table evicts its own least recently seen entry (the port holding the most entries loses one), never another port's.")


def s_invalid_frames():
    topo = three_access("invalid-frames")
    runt = mac_bytes(H2) + mac_bytes(H3)[:4]                                     # 10 bytes
    trunc_tag = mac_bytes(H2) + mac_bytes(H3) + struct.pack("!HH", TPID_8021Q, 10)  # tag with 2 of 4 bytes
    bad_ihl = bytearray(udp(H3, H1, IP3, IP1))
    bad_ihl[14] = 0x43                                                           # version 4, IHL 3
    frames = [
        (0, "a", runt),
        (1, "a", trunc_tag),
        (2, "c", bytes(bad_ihl)),
        (3, "a", udp(H1, H3, IP1, IP3)),                 # H3 never learned: floods b, c
        (4, "c", udp(H3, H1, IP3, IP1, 5000, 40000)),    # a only
    ]
    return emit("invalid-frames", topo, frames,
                "Runt frames, truncated VLAN tags and IPv4 headers with IHL < 5 are dropped as invalid without learning; valid traffic still flows.")


def s_qinq_on_trunk():
    topo = Topology("qinq-on-trunk",
                    [("lan", 10), ("other", 20)],
                    [("a", access("t-a", "lan")), ("b", access("t-b", "other")),
                     ("up", trunk("t-up", ["lan", "other"])),
                     ("up2", trunk("t-up2", ["lan"]))])
    frames = [
        (0, "up", udp(H1, H2, IP1, IP2, tags=[q(10, pcp=2), q(100)])),      # a: inner tag kept; up2: tag10 pcp2 + inner
        (1, "a", udp(H2, H1, IP2, IP1, 5000, 40000)),                       # up only, tag 10
        (2, "up", udp(H1, H2, IP1, IP2, tags=[ad(10), q(100)])),            # 802.1ad outer: vlan
        (3, "up", udp(H1, H2, IP1, IP2, tags=[q(10), ad(200)])),            # inner 802.1ad is payload: a only
        (4, "b", arp_request(H3, "10.20.0.3", "10.20.0.1")),               # up only, tag 20
    ]
    return emit("qinq-on-trunk", topo, frames,
                "On a trunk only the outer 802.1Q tag is classified: an inner tag is carried as payload, and an 802.1ad outer tag is dropped.")


def s_no_destination():
    topo = Topology("no-destination", [("lan", 10), ("solo", 20)],
                    [("a", access("t-a", "lan")), ("b", access("t-b", "lan")),
                     ("s", access("t-s", "solo"))])
    frames = [
        (0, "s", arp_request(H4, "10.20.0.4", "10.20.0.1")),  # only port of solo: no-destination
        (1, "s", udp(H4, H1, "10.20.0.4", "10.20.0.1")),      # unknown unicast, nowhere to flood
        (2, "a", arp_request(H1, IP1, IP2)),                  # b
    ]
    return emit("no-destination", topo, frames,
                "A flood in a network with no other port is dropped with reason no-destination.")


SCENARIOS = [
    s_access_learning, s_network_isolation, s_trunk_tagging, s_access_vlan_drops,
    s_pcp_preserve, s_mac_aging, s_hairpin, s_multicast_source,
    s_mac_table_full, s_invalid_frames, s_qinq_on_trunk, s_no_destination,
]


def s_office():
    """The bundled example of the README's Quickstart: examples/office, topologies/office.yaml."""
    topo = Topology("office",
                    [("staff", 10), ("servers", 20)],
                    [("pc1", access("tap-pc1", "staff")), ("pc2", access("tap-pc2", "staff")),
                     ("db1", access("tap-db1", "servers")),
                     ("uplink", trunk("tap-uplink", ["staff", "servers"], native="staff"))])
    PC1, PC2, DB1, ROUTER = mac(0x11), mac(0x12), mac(0x21), mac(0xFE)
    runt = mac_bytes(PC2) + mac_bytes(PC1)[:2]
    frames = [
        (0, "pc1", arp_request(PC1, "10.1.0.11", "10.1.0.12")),                   # pc2, uplink untagged (native)
        (1, "pc2", arp_reply(PC2, "10.1.0.12", PC1, "10.1.0.11")),                # pc1 only
        (2, "pc1", icmp_echo(PC1, PC2, "10.1.0.11", "10.1.0.12")),                # pc2 only
        (3, "pc2", icmp_echo(PC2, PC1, "10.1.0.12", "10.1.0.11", reply=True)),    # pc1 only
        (4, "db1", arp_request(DB1, "10.2.0.21", "10.2.0.1")),                    # uplink, tag 20
        (5, "uplink", arp_reply(ROUTER, "10.2.0.1", DB1, "10.2.0.21", tags=[q(20)])),  # db1 untagged
        (6, "db1", udp(DB1, ROUTER, "10.2.0.21", "10.9.0.1", 5432, 40000)),      # uplink only, tag 20
        (7, "pc1", udp(PC1, DB1, "10.1.0.11", "10.2.0.21", tags=[q(20)])),        # VLAN hopping attempt: vlan
        (8, "pc1", udp(PC1, DB1, "10.1.0.11", "10.2.0.21")),                      # db1 unknown in staff: floods staff only
        (9, "uplink", udp(ROUTER, PC1, "10.9.0.1", "10.1.0.11", tags=[q(30)])),   # VID 30 not carried: vlan
        (10, "pc2", runt),                                                        # 8-byte runt: invalid
        (11, "uplink", udp(ROUTER, PC2, "10.9.0.1", "10.1.0.12")),                # untagged = staff: pc2 only
    ]
    sw = emit("office", topo, frames,
              "Two networks and a trunk uplink: learning, isolation, tagging, a VLAN hopping attempt and a runt.",
              root=os.path.join(REPO, "examples"))
    shutil.copyfile(os.path.join(REPO, "examples", "office", "topology.yaml"),
                    os.path.join(REPO, "topologies", "office.yaml"))
    return sw


def main():
    os.makedirs(os.path.join(REPO, "topologies"), exist_ok=True)
    s_office()
    os.makedirs(OUT_ROOT, exist_ok=True)
    for fn in SCENARIOS:
        sw = fn()
        name = sw.folder
        outs = {p: len(v) for p, v in sw.out.items()}
        print("%-18s out=%s drops=%s" % (name, outs, dict(sorted(sw.drops.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
