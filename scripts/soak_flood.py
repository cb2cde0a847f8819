#!/usr/bin/env python3
"""Hostile traffic for scripts/soak.sh: an AF_PACKET sender bound to one interface.

  soak_flood.py syn IFACE RATE [--dst-ip 10.0.0.99] [--allowed-ports LOW-HIGH]
      TCP SYNs (no ACK), each from a random locally administered source MAC and a random source
      address in 10.77.0.0/16 with a random source port, all to DST_IP. Two thirds go to a port in
      ALLOWED_PORTS (the soak topology allows them, so they fill the connection table), one third
      to a random port (refused by the firewall). A MAC flood and a SYN flood at once.
  soak_flood.py random IFACE RATE
      Frames of random bytes (random length 1..1514; half of them carry ethertype 0x0800 in front
      of garbage, so the parser sees broken IPv4 headers). Source MACs are random too.

RATE is frames per second (sent in bursts of RATE/50 every 20 ms, so a 2-core machine stays
usable). Runs until SIGTERM/SIGINT, then prints `sent N frames` on stdout. Only for test
namespaces: it never looks up or targets anything outside the interface it is given.
"""
import os
import random
import signal
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def random_mac() -> bytes:
    # locally administered, unicast
    first = (random.getrandbits(8) & 0xFC) | 0x02
    return bytes([first]) + random.randbytes(5)


DST_MAC = bytes.fromhex("029900000099")  # nobody has it: unknown unicast, flooded by the switch


def syn_frame(dst_ip: bytes, allowed: tuple) -> bytes:
    src_ip = bytes([10, 77]) + random.randbytes(2)
    sport = random.randint(1024, 65535)
    if random.random() < 2 / 3:
        dport = random.randint(allowed[0], allowed[1])
    else:
        dport = random.randint(1, 65535)
    seq = random.getrandbits(32)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0, 64, 6, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return DST_MAC + random_mac() + b"\x08\x00" + ip + tcp


def random_frame() -> bytes:
    length = random.randint(1, 1514)
    frame = bytearray(random.randbytes(length))
    if length >= 14 and random.random() < 0.5:
        frame[12:14] = b"\x08\x00"
    return bytes(frame)


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[1] not in ("syn", "random"):
        print(__doc__, file=sys.stderr)
        return 64
    mode, iface, rate = sys.argv[1], sys.argv[2], int(sys.argv[3])
    dst_ip = socket.inet_aton("10.0.0.99")
    allowed = (10000, 19999)
    args = sys.argv[4:]
    while args:
        if args[0] == "--dst-ip":
            dst_ip = socket.inet_aton(args[1])
        elif args[0] == "--allowed-ports":
            low, high = args[1].split("-")
            allowed = (int(low), int(high))
        else:
            print(f"unknown argument {args[0]}", file=sys.stderr)
            return 64
        args = args[2:]
    if not dst_ip.startswith(b"\x0a"):
        print("refusing: the destination must be inside 10.0.0.0/8", file=sys.stderr)
        return 64

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    sock.setblocking(False)
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    make = (lambda: syn_frame(dst_ip, allowed)) if mode == "syn" else random_frame
    burst = max(1, rate // 50)
    sent = errors = 0
    next_time = time.monotonic()
    while not stop:
        for _ in range(burst):
            try:
                sock.send(make())
                sent += 1
            except BlockingIOError:
                errors += 1
            except OSError:
                # the device went away or refuses this frame (a random one can be malformed
                # for the kernel too); keep going
                errors += 1
        next_time += 0.02
        delay = next_time - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_time = time.monotonic()
    print(f"sent {sent} frames ({errors} send errors)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
