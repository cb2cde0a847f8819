#!/usr/bin/env python3
"""Writes the datapath fuzz target's fragment seeds (Fuzz/Corpus/datapath/frag-*): IPv4 and IPv6 UDP
datagrams whose fragments come out of order, refused, overlapping, duplicated, tiny, on the trunk,
and held past their expiry. Run from the project root with python3-scapy: scripts/gen_fragment_seeds.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fuzz_corpus import datapath_record
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Ether, Dot1Q
from scapy.packet import Raw

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"

def frags(v6, ident, dport, size, cuts, proto=17, vlan=None):
    src, dst = ("fd00:10::1", "fd00:10::2") if v6 else ("10.0.10.1", "10.0.10.2")
    l4 = UDP(sport=40000, dport=dport) / Raw(bytes(range(size % 256)) * (size // 256) + bytes(range(size % 256)))
    whole = bytes((IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)) / l4)
    payload = whole[40:] if v6 else whole[20:]
    bounds = [0] + cuts + [len(payload)]
    out = []
    for i in range(len(bounds) - 1):
        more = i < len(bounds) - 2
        data = payload[bounds[i]:bounds[i + 1]]
        if v6:
            l3 = IPv6(src=src, dst=dst, nh=44) / IPv6ExtHdrFragment(nh=proto, offset=bounds[i] // 8, m=int(more), id=ident) / Raw(data)
        else:
            l3 = IP(src=src, dst=dst, id=ident, proto=proto, flags="MF" if more else 0, frag=bounds[i] // 8) / Raw(data)
        eth = Ether(src=A, dst=B) / (Dot1Q(vlan=vlan) / l3 if vlan else l3)
        out.append(bytes(eth))
    return out


def seed(name, frames, mode=4):
    data = bytes([mode])
    for port, step, f in frames:
        data += datapath_record(port, step, f)
    open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Fuzz/Corpus/datapath", name), "wb").write(data)

a = frags(False, 0x3001, 53, 52, [24, 48])
r = frags(False, 0x3002, 6000, 52, [24])
o = frags(False, 0x3004, 5000, 52, [24, 48])
forged = frags(False, 0x3004, 5000, 52, [16, 32])[1]
seed("frag-out-of-order", [(0, 1, a[2]), (0, 1, a[1]), (0, 1, a[0]), (0, 1, r[1]), (0, 1, r[0]),
                            (0, 1, o[0]), (0, 1, forged), (0, 1, o[1]), (0, 1, o[2]), (0, 1, o[1])])
six = frags(True, 0x70000001, 53, 72, [24, 56])
seed("frag-ipv6-out-of-order", [(0, 1, six[2]), (0, 1, six[1]), (0, 1, six[2]), (0, 1, six[0])])
trunk = frags(False, 0x3010, 5000, 40, [8, 16, 24], vlan=10)
seed("frag-tiny-trunk", [(2, 1, trunk[3]), (2, 0, trunk[1]), (2, 0, trunk[2]), (2, 1, trunk[0])])
late = frags(False, 0x3020, 53, 52, [24])
seed("frag-held-expiry", [(0, 1, late[1]), (1, 1, frags(False, 0x3021, 53, 52, [24])[1]), (0, 60, late[0])], mode=4 | 8)
print("frag seeds written")
