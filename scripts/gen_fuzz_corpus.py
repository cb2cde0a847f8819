#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target under Fuzz/Corpus/TARGET from the project's own
captures (Tests/TapestryReplayTests/Scenarios, examples/) and topologies (topologies/, the
topology fixtures). Deterministic: running it again gives the same files. docs/fuzzing.md says
what each target's input format is; the seeds follow it.

    scripts/gen_fuzz_corpus.py
"""
import hashlib
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = os.path.join(ROOT, "Tests/TapestryReplayTests/Scenarios")
CORPUS = os.path.join(ROOT, "Fuzz/Corpus")


def read_pcap(path):
    """(timestamp_ns, frame) for every record of a classic pcap (micro or nanosecond)."""
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        endian = "<"
    else:
        endian = ">"
        magic = struct.unpack(">I", data[:4])[0]
    scale = 1 if magic == 0xA1B23C4D else 1000
    offset = 24
    records = []
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        offset += 16
        records.append((sec * 1_000_000_000 + frac * scale, data[offset:offset + caplen]))
        offset += caplen
    return records


def scenario_inputs():
    """[(scenario, [(port_index, timestamp, frame)] merged by time)] for every scenario."""
    result = []
    for name in sorted(os.listdir(SCENARIOS)):
        folder = os.path.join(SCENARIOS, name, "in")
        if not os.path.isdir(folder):
            continue
        merged = []
        for index, file in enumerate(sorted(os.listdir(folder))):
            for order, (time, frame) in enumerate(read_pcap(os.path.join(folder, file))):
                merged.append((time, index, order, frame))
        merged.sort()
        result.append((name, [(port, time, frame) for time, port, _, frame in merged]))
    return result


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as file:
        file.write(data)


def frame_parser(scenarios):
    # One frame of each distinct (EtherType, tag count, IP protocol, length class), at most 32.
    seen = {}
    for _, frames in scenarios:
        for _, _, frame in frames:
            key = (frame[12:14], frame[16:18] if frame[12:14] in (b"\x81\x00", b"\x88\xa8") else b"",
                   frame[23:24], len(frame) // 64)
            seen.setdefault(key, frame)
    for index, frame in enumerate(list(seen.values())[:32]):
        write("frame-parser", "seed-%02d" % index, frame)


def datapath_record(port, step, frame, offload=None):
    flags = 1 if offload else 0
    out = bytes([port, step, flags])
    if offload:
        out += offload
    return out + struct.pack(">H", len(frame)) + frame


def datapath(scenarios):
    # Each scenario's inputs as records (ports in file order, time steps from the timestamps),
    # variant 0 (firewall + load balancers) with checksums fixed; a few in the other variants.
    for index, (name, frames) in enumerate(scenarios):
        mode = 4 | (index % 3 if index >= 24 else 0)
        out = bytes([mode])
        previous = None
        for port, time, frame in frames[:12]:
            if previous is None or time == previous:
                step = 0
            else:
                # steps are squared tens of milliseconds; round the gap to the nearest.
                gap = (time - previous) / 10_000_000
                step = max(1, min(254, int(round(gap ** 0.5))))
            previous = time
            out += datapath_record(port, step, frame)
        write("datapath", name, out)
    # SYNs whose capture times jump between the ends of Int64 (replay takes any time a file
    # holds): connection timeouts and MAC aging computed across the wrap.
    syn = bytearray(tcp_frame(0))
    syn[47] = 0x02
    other = bytearray(syn)
    other[11] = 0x0B
    other[14 + 15] = 2
    jumps = b""
    for port, frame, time in [(0, syn, 2 ** 63 - 1), (1, other, -2 ** 63), (0, syn, 2 ** 63 - 1), (2, other, 0),
                              (0, syn, -2 ** 63)]:
        jumps += bytes([port, 255, 0]) + struct.pack(">H", len(frame)) + bytes(frame) + struct.pack(">q", time)
    for variant in range(3):
        write("datapath", "time-jumps-%d" % variant, bytes([4 | variant]) + jumps)
    # A TSO frame with a virtio-net header (GSO TCPv4, MSS 100) to the trunk: the egress shift.
    tcp = tcp_frame()
    header = struct.pack("<BBHHHH", 1, 1, 54, 100, 34, 16)
    write("datapath", "tso-offload", bytes([4]) + datapath_record(0, 0, tcp, header) + datapath_record(2, 1, tcp, header))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_frame(payload_length=600, ipv6=False, vlan=None):
    payload = bytes((i * 7) & 0xFF for i in range(payload_length))
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1000, 1, 0x50, 0x18, 65535, 0, 0) + payload
    if ipv6:
        src, dst = bytes.fromhex("fd000000000000000000000000000001"), bytes.fromhex("fd000000000000000000000000000002")
        pseudo = src + dst + struct.pack("!IxxxB", len(tcp), 6)
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
        l3 = struct.pack("!IHBB", 0x60000000, len(tcp), 6, 64) + src + dst
        ethertype = b"\x86\xdd"
    else:
        src, dst = bytes([10, 0, 10, 1]), bytes([10, 0, 10, 100])
        pseudo = src + dst + struct.pack("!xBH", 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
        header = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0) + src + dst
        l3 = header[:10] + struct.pack("!H", checksum(header)) + header[12:] + tcp
        ethertype = b"\x08\x00"
    tag = b"\x81\x00" + struct.pack("!H", vlan) if vlan is not None else b""
    return bytes.fromhex("020000000100") + bytes.fromhex("02000000000a") + tag + ethertype + l3


def segmentation():
    cases = [
        ("v4-mss1448", 1, 1448, tcp_frame(4000), 4),
        ("v4-mss100", 1, 100, tcp_frame(1000), 0),
        ("v6-vlan-mss500", 4, 500, tcp_frame(1600, ipv6=True, vlan=20), 4),
        ("v4-ecn", 0x81, 536, tcp_frame(1200), 4),
        ("v4-needs-checksum", 0, 0, tcp_frame(300), 4),
        ("v4-big", 1, 65535, tcp_frame(100), 4),
    ]
    for name, gso, mss, frame, gap in cases:
        flags = 1
        header = struct.pack("<BBHHHH", flags, gso, 54, mss, 34, 16)
        extra = 65000 if name == "v4-big" else 0
        write("segmentation", name, header + bytes([gap // 4]) + struct.pack(">H", extra) + frame)


def stream(scenarios):
    # Frames of a few scenarios in QEMU's framing, read in pieces of 1, 7, 100 and 256 bytes.
    for index, (name, frames) in enumerate(scenarios[:8]):
        stream_bytes = b"".join(struct.pack(">I", len(f)) + f for _, _, f in frames[:6])
        piece = [1, 7, 100, 0][index % 4]
        out = bytes([23])  # 64 + 23 * 64 = 1536-byte frames at most
        size = piece or 256
        for start in range(0, len(stream_bytes), size):
            out += bytes([piece]) + stream_bytes[start:start + size]
        write("stream", name, out)
    write("stream", "too-long", bytes([0, 8]) + struct.pack(">I", 65) + b"x" * 4)


def pcapng(interface_options=b"", packets=()):
    def block(kind, body):
        return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    def option(code, value):
        return struct.pack("<HH", code, len(value)) + value + b"\0" * ((4 - len(value) % 4) % 4)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 262144) + option(9, b"\x09") + interface_options + option(0, b""))
    for timestamp, frame in packets:
        body = struct.pack("<IIIII", 0, timestamp >> 32, timestamp & 0xFFFFFFFF, len(frame), len(frame))
        out += block(6, body + frame + b"\0" * ((4 - len(frame) % 4) % 4))
    return out


def pcap(scenarios):
    # The smallest input captures as they are, and pcapng files for the edge cases.
    files = []
    for name, _ in scenarios:
        folder = os.path.join(SCENARIOS, name, "in")
        for file in sorted(os.listdir(folder)):
            path = os.path.join(folder, file)
            files.append((os.path.getsize(path), name + "-" + file, path))
    for _, name, path in sorted(files)[:16]:
        shutil.copyfile(path, os.path.join(CORPUS, "pcap", name))
    frame = tcp_frame(20)
    write("pcap", "pcapng-ns", pcapng(packets=[(1_700_000_000_000_000_000, frame), (1_700_000_000_000_000_001, frame)]))
    write("pcap", "pcapng-tsoffset-negative", pcapng(struct.pack("<HHq", 14, 8, -2_000_000_000), [(123, frame)]))
    write("pcap", "pcapng-after-2262", pcapng(packets=[(2 ** 64 - 1, frame)]))


def topology():
    sources = [os.path.join(ROOT, "topologies", f) for f in sorted(os.listdir(os.path.join(ROOT, "topologies")))]
    fixtures = os.path.join(ROOT, "Tests/TapestryTopologyTests/Fixtures")
    sources += [os.path.join(fixtures, "valid", f) for f in sorted(os.listdir(os.path.join(fixtures, "valid")))]
    invalid = sorted(os.listdir(os.path.join(fixtures, "invalid")))
    sources += [os.path.join(fixtures, "invalid", f) for f in invalid[::3]]  # every third: a spread of errors
    sources.append(os.path.join(SCENARIOS, "lb-firewall", "topology.yaml"))
    for path in sources:
        shutil.copyfile(path, os.path.join(CORPUS, "topology", os.path.basename(os.path.dirname(path)) + "-" + os.path.basename(path)))


def vxlan():
    """Mode byte 0: a VXLAN payload; 1: an outer IPv4/UDP/VXLAN packet (the layout scapy builds)."""
    inner = bytes.fromhex("02000000000202000000000108004500002a00014000401112c00a000a010a000a02"
                          "9c4013880016195068656c6c6f207461706573747279")
    header = bytes.fromhex("0800000000139200")  # I flag, VNI 5010
    outer = bytes.fromhex("4500005c000040004011608e0a0063010a006302cb2012b500480000")
    write("vxlan", "payload", b"\x00" + header + inner)
    write("vxlan", "payload-gbp-flag", b"\x00" + bytes.fromhex("8800000000139200") + inner)
    write("vxlan", "payload-short", b"\x00" + header + inner[:13])
    write("vxlan", "underlay", b"\x01" + outer + header + inner)
    fragment = bytearray(outer)
    fragment[6] = 0x20
    write("vxlan", "underlay-fragment", b"\x01" + bytes(fragment) + header + inner)


# Targets whose seeds this script writes (control and frame-syntax seeds are kept as they are).
GENERATED = ["frame-parser", "datapath", "pcap", "topology", "stream", "segmentation", "vxlan"]


def main():
    for target in GENERATED:
        if os.path.isdir(os.path.join(CORPUS, target)):
            shutil.rmtree(os.path.join(CORPUS, target))
        os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    scenarios = scenario_inputs()
    frame_parser(scenarios)
    datapath(scenarios)
    pcap(scenarios)
    topology()
    stream(scenarios)
    segmentation()
    vxlan()
    for target in sorted(os.listdir(CORPUS)):
        names = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, n)) for n in names)
        print("%-13s %3d files %7d bytes" % (target, len(names), size))


if __name__ == "__main__":
    sys.exit(main())
