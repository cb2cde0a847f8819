#!/usr/bin/env python3
"""Generate the VXLAN replay scenario under Tests/TapestryReplayTests/Scenarios/vxlan-tunnel/.

An oracle written by hand for one topology (a tap port, a trunk, and a VXLAN port with two
remotes carrying two networks): every expected output packet is built here with scapy from the
RFC 7348 layout and the behaviour docs/multi-host.md describes (head-end replication, MACs
learned behind a remote, split horizon, `tunnel` drops, the MTU bound), not by the switch.

The one value taken from the switch's definition rather than derived independently is the outer
UDP source port: docs/multi-host.md documents it as a function of the inner flow, and
`source_port` below re-implements that function so the comparison can be byte for byte.

Deterministic: `/usr/bin/python3 scripts/gen_vxlan_fixtures.py` rewrites the folder byte for byte.
"""

import json
import os
import shutil

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from scapy.utils import PcapWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "Tests", "TapestryReplayTests", "Scenarios", "vxlan-tunnel")
BASE_SEC = 1700000000
LOCAL, R0, R1 = "10.0.99.1", "10.0.99.2", "10.0.99.3"
MTU = 1400
A, B, C, D, E = ("02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c",
                 "02:00:00:00:00:0d", "02:00:00:00:00:0e")
BCAST = "ff:ff:ff:ff:ff:ff"
WEB_VNI, DB_VNI = 5010, 20  # db has no vni: its VLAN id

TOPOLOGY = """\
name: vxlan-tunnel
networks:
  web: { vlan: 10, vni: 5010 }
  db: { vlan: 20 }
ports:
  a: { tap: vxa, network: web }
  b: { tap: vxb, trunk: [web, db] }
  dc2:
    vxlan: { local: 10.0.99.1, remotes: [10.0.99.2, 10.0.99.3], mtu: 1400 }
    trunk: [web, db]
"""

M64 = (1 << 64) - 1


def source_port(inner):
    """The outer UDP source port for an inner frame, as the switch defines it (a 64-bit mix of
    the IPv4 addresses, protocol and L4 ports, or of the MACs and EtherType without IP; the
    result's top 32 bits, then 14 of them in 49152-65535). The frames here are untagged."""
    h = 0x9E3779B97F4A7C15

    def mix(word):
        nonlocal h
        h = ((h ^ word) * 0xBF58476D1CE4E5B9) & M64
        h ^= h >> 31

    ethertype = int.from_bytes(inner[12:14], "big")
    if ethertype == 0x0800:
        l3 = 14
        mix(int.from_bytes(inner[l3 + 12:l3 + 20], "little"))
        proto = inner[l3 + 9]
        mix(proto)
        ihl = (inner[l3] & 15) * 4
        frag = int.from_bytes(inner[l3 + 6:l3 + 8], "big") & 0x3FFF
        if proto in (6, 17) and frag == 0:
            mix(int.from_bytes(inner[l3 + ihl:l3 + ihl + 4], "little"))
    else:
        mix(int.from_bytes(inner[0:8], "little"))
        mix((int.from_bytes(inner[8:12], "little") << 16) | ethertype)
    return 49152 | ((h >> 32) >> 18)


def pad(frame):
    raw = bytes(frame)
    return raw + b"\0" * (60 - len(raw)) if len(raw) < 60 else raw


def underlay(src, dst, vni, inner, flags=0x08, dport=4789, sport=None):
    """An outer packet as Linux's vxlan sends it: DF, TTL 64, IP id 0, UDP checksum 0."""
    packet = (IP(src=src, dst=dst, id=0, flags="DF", ttl=64)
              / UDP(sport=sport if sport is not None else source_port(inner), dport=dport, chksum=0)
              / VXLAN(flags=flags, vni=vni) / Raw(inner))
    return bytes(packet)


def udp_frame(src, dst, sip, dip, size=None, tag=None):
    layers = Ether(src=src, dst=dst)
    if tag is not None:
        layers = layers / Dot1Q(vlan=tag)
    frame = layers / IP(src=sip, dst=dip, id=1, flags="DF") / UDP(sport=40000, dport=5000)
    payload = b"vxlan fixture"
    if size is not None:
        payload = b"x" * (size - len(bytes(frame)))
    return pad(frame / Raw(payload))


def untag(frame):
    return frame[:12] + frame[16:]


def write(path, records, linktype):
    w = PcapWriter(path, linktype=linktype, sync=True, endianness="<", snaplen=65535)
    w.write_header(None)
    for t, raw in records:
        w.write_packet(raw, sec=BASE_SEC + t, usec=0)
    w.close()


def main():
    arp_request = pad(Ether(src=A, dst=BCAST) / ARP(op=1, hwsrc=A, psrc="10.0.10.1", pdst="10.0.10.2"))
    arp_reply = pad(Ether(src=B, dst=A) / ARP(op=2, hwsrc=B, psrc="10.0.10.2", hwdst=A, pdst="10.0.10.1"))
    a_to_b = udp_frame(A, B, "10.0.10.1", "10.0.10.2")
    c_broadcast = udp_frame(C, BCAST, "10.0.20.3", "10.0.20.255")
    d_to_c_tagged = udp_frame(D, C, "10.0.20.4", "10.0.20.3", tag=20)
    b_to_a = udp_frame(B, A, "10.0.10.2", "10.0.10.1")
    largest = udp_frame(A, B, "10.0.10.1", "10.0.10.2", size=MTU - 36)
    too_large = udp_frame(A, B, "10.0.10.1", "10.0.10.2", size=MTU - 36 + 1)
    tagged_inner = udp_frame(E, A, "10.0.10.5", "10.0.10.1", tag=5)
    e_to_b = udp_frame(E, B, "10.0.10.5", "10.0.10.2")

    inputs = {"a": [], "b": [], "dc2": []}
    expect = {"a": [], "b": [], "dc2": []}
    # 1: A's ARP request floods web: to b tagged 10, and once to each remote (VNI 5010).
    inputs["a"].append((1, arp_request))
    expect["b"].append((1, arp_request[:12] + b"\x81\x00\x00\x0a" + arp_request[12:]))
    expect["dc2"] += [(1, underlay(LOCAL, R0, WEB_VNI, arp_request)), (1, underlay(LOCAL, R1, WEB_VNI, arp_request))]
    # 2: B answers from behind remote 0: decapsulated to a; B is learned as (dc2, 10.0.99.2).
    inputs["dc2"].append((2, underlay(R0, LOCAL, WEB_VNI, arp_reply, sport=51000)))
    expect["a"].append((2, arp_reply))
    # 3: A to B goes to remote 0 only.
    inputs["a"].append((3, a_to_b))
    expect["dc2"].append((3, underlay(LOCAL, R0, WEB_VNI, a_to_b)))
    # 4: a broadcast in db (VNI 20, the VLAN id) from behind remote 1: to b tagged 20, not back
    # into the tunnel.
    inputs["dc2"].append((4, underlay(R1, LOCAL, DB_VNI, c_broadcast, sport=52000)))
    expect["b"].append((4, c_broadcast[:12] + b"\x81\x00\x00\x14" + c_broadcast[12:]))
    # 5: D (on b, db) to C goes to remote 1 with VNI 20, untagged inside.
    inputs["b"].append((5, d_to_c_tagged))
    expect["dc2"].append((5, underlay(LOCAL, R1, DB_VNI, untag(d_to_c_tagged))))
    # 6-9: refused as `tunnel`: an unlisted source, an unknown VNI, no I flag, another UDP port.
    inputs["dc2"].append((6, underlay("10.0.99.9", LOCAL, WEB_VNI, b_to_a, sport=51000)))
    inputs["dc2"].append((7, underlay(R0, LOCAL, 7777, b_to_a, sport=51000)))
    inputs["dc2"].append((8, underlay(R0, LOCAL, WEB_VNI, b_to_a, flags=0x00, sport=51000)))
    inputs["dc2"].append((9, underlay(R0, LOCAL, WEB_VNI, b_to_a, dport=4790, sport=51000)))
    # 10: B shows up behind remote 1 (it moved): delivered to a, B is now (dc2, 10.0.99.3).
    inputs["dc2"].append((10, underlay(R1, LOCAL, WEB_VNI, b_to_a, sport=52000)))
    expect["a"].append((10, b_to_a))
    # 11: A to B follows the move.
    inputs["a"].append((11, a_to_b))
    expect["dc2"].append((11, underlay(LOCAL, R1, WEB_VNI, a_to_b)))
    # 12: an inner frame of MTU - 36 bytes fits (an outer packet of exactly the MTU); one byte
    # more is `oversize`.
    inputs["a"].append((12, largest))
    expect["dc2"].append((12, underlay(LOCAL, R1, WEB_VNI, largest)))
    inputs["a"].append((13, too_large))
    # 14: a tagged inner frame is refused (`vlan`), as on an access port.
    inputs["dc2"].append((14, underlay(R0, LOCAL, WEB_VNI, tagged_inner, sport=51000)))
    # 15: E (behind remote 0) to B (behind remote 1): never from one remote to another (`hairpin`).
    inputs["dc2"].append((15, underlay(R0, LOCAL, WEB_VNI, e_to_b, sport=51000)))

    assert len(expect["dc2"][-1][1]) == MTU
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(os.path.join(OUT, "in"))
    os.makedirs(os.path.join(OUT, "expect"))
    with open(os.path.join(OUT, "topology.yaml"), "w") as f:
        f.write(TOPOLOGY)
    for port in inputs:
        linktype = 228 if port == "dc2" else 1
        if inputs[port]:
            write(os.path.join(OUT, "in", port + ".pcap"), inputs[port], linktype)
        write(os.path.join(OUT, "expect", port + ".pcap"), expect[port], linktype)
    with open(os.path.join(OUT, "expect", "summary.json"), "w") as f:
        json.dump({"drops": {"hairpin": 1, "oversize": 1, "tunnel": 4, "vlan": 1}}, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("A VXLAN port with two remotes and two networks: floods replicated to each remote, unicast to the "
                "remote a MAC was learned behind (and after it moves), VNIs mapped to networks, the MTU bound, "
                "and the packets refused as tunnel, vlan and hairpin drops; outputs encapsulated byte for byte.\n")


if __name__ == "__main__":
    main()
