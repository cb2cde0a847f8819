#!/usr/bin/env python3
"""vlan_probe.py - play a VLAN-aware host on a raw interface (stdlib only).

Used by Tapestry's trunk-port end-to-end tests on kernels without 802.1Q
support: it sends 802.1Q-tagged ARP / ICMP frames from an AF_PACKET socket
and checks that the answers come back on the expected VLAN.

  vlan_probe.py --dev IFACE --vid 10 --ip 10.0.10.9 --ping 10.0.10.1 [--count 3]
                [--timeout 5] [--pcp 0]          ping over VLAN 10
  vlan_probe.py ... --ping 10.0.20.1 --expect-silence
                                                 assert that nothing answers
  vlan_probe.py --dev IFACE --vid 10 --ip 10.0.10.1 --respond [--timeout 6]
                                                 only answer ARP/echo for --ip

Exit status: 0 success, 1 failure (missing replies / unexpected answer),
2 usage or socket errors.

Receive-side VLAN handling: Linux strips the 802.1Q tag from received frames
before AF_PACKET sees them (even without the 8021q module) and reports it via
PACKET_AUXDATA (struct tpacket_auxdata).  The tag is taken from there; a tag
still present inline in the bytes (EtherType 0x8100 at offset 12) is also
understood.  A frame matches only if it carried exactly one tag with --vid.
"""

import argparse
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8

SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
AUXDATA_FMT = "=IIIHHHH"  # status, len, snaplen, mac, net, vlan_tci, vlan_tpid
AUXDATA_LEN = struct.calcsize(AUXDATA_FMT)

BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6


def mac_str(b):
    return ":".join("%02x" % x for x in b)


def mac_bytes(s):
    parts = s.strip().split(":")
    if len(parts) != 6:
        raise ValueError("bad MAC %r" % s)
    return bytes(int(p, 16) for p in parts)


def checksum(data):
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def log(msg):
    print(msg, flush=True)


class Probe:
    def __init__(self, args):
        self.args = args
        self.dev = args.dev
        self.vid = args.vid
        self.pcp = args.pcp
        self.ip = socket.inet_aton(args.ip)
        self.ip_str = args.ip
        try:
            with open("/sys/class/net/%s/address" % self.dev) as f:
                self.mac = mac_bytes(f.read())
        except FileNotFoundError:
            raise OSError("no such interface: %s" % self.dev) from None
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                  socket.htons(ETH_P_ALL))
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.bind((self.dev, 0))
        self._drain()
        self.ident = os.getpid() & 0xFFFF

    # ------------------------------------------------------------- plumbing
    def _drain(self):
        """Drop frames queued before bind() (they may be from other devices)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            pass
        self.sock.setblocking(True)

    def send(self, dst, ethertype, payload):
        tci = (self.pcp << 13) | self.vid
        frame = dst + self.mac + struct.pack("!HHH", ETH_P_8021Q, tci,
                                             ethertype) + payload
        if len(frame) < 60:
            frame += b"\x00" * (60 - len(frame))
        self.sock.send(frame)

    def recv(self, deadline):
        """Return (vlan_tags, src_mac, dst_mac, ethertype, payload) or None
        on deadline.  vlan_tags is a list of (tpid, vid) outermost first."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            data, ancdata, _flags, addr = self.sock.recvmsg(
                65535, socket.CMSG_SPACE(AUXDATA_LEN))
            if addr[2] == PACKET_OUTGOING or len(data) < 14:
                continue
            tags = []
            for level, ctype, cdata in ancdata:
                if (level == SOL_PACKET and ctype == PACKET_AUXDATA
                        and len(cdata) >= AUXDATA_LEN):
                    status, _l, _s, _m, _n, tci, tpid = struct.unpack(
                        AUXDATA_FMT, cdata[:AUXDATA_LEN])
                    if status & TP_STATUS_VLAN_VALID:
                        if not status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = ETH_P_8021Q
                        tags.append((tpid, tci & 0x0FFF))
            dst, src = data[0:6], data[6:12]
            off = 12
            (etype,) = struct.unpack_from("!H", data, off)
            while etype in (ETH_P_8021Q, ETH_P_8021AD) and len(data) >= off + 6:
                (tci,) = struct.unpack_from("!H", data, off + 2)
                tags.append((etype, tci & 0x0FFF))
                off += 4
                (etype,) = struct.unpack_from("!H", data, off)
            return tags, src, dst, etype, data[off + 2:]

    def on_our_vlan(self, tags):
        return len(tags) == 1 and tags[0] == (ETH_P_8021Q, self.vid)

    @staticmethod
    def tags_str(tags):
        if not tags:
            return "untagged"
        return "/".join(("vlan %d" % v) if t == ETH_P_8021Q
                        else ("vlan %d(tpid 0x%04x)" % (v, t))
                        for t, v in tags)

    # ------------------------------------------------------------- protocols
    def send_arp(self, op, dst_mac, tha, tpa):
        arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, op,
                          self.mac, self.ip, tha, tpa)
        self.send(dst_mac, ETH_P_ARP, arp)

    @staticmethod
    def parse_arp(payload):
        if len(payload) < 28:
            return None
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack(
            "!HHBBH6s4s6s4s", payload[:28])
        if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
            return None
        return op, sha, spa, tha, tpa

    def ipv4(self, dst_ip, proto, payload, ident=0):
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident,
                          0x4000, 64, proto, 0, self.ip, dst_ip)
        hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
        return hdr + payload

    @staticmethod
    def parse_ipv4(payload):
        if len(payload) < 20 or payload[0] >> 4 != 4:
            return None
        ihl = (payload[0] & 0x0F) * 4
        (total,) = struct.unpack_from("!H", payload, 2)
        if ihl < 20 or total < ihl or len(payload) < total:
            return None
        if checksum(payload[:ihl]) != 0:
            return None
        return payload[9], payload[12:16], payload[16:20], payload[ihl:total]

    @staticmethod
    def icmp(typ, ident, seq, data):
        msg = struct.pack("!BBHHH", typ, 0, 0, ident, seq) + data
        return msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]

    def handle_request(self, frame):
        """Answer ARP requests / ICMP echo requests for our IP on our VLAN.
        Returns True if the frame was consumed."""
        tags, src, dst, etype, payload = frame
        if not self.on_our_vlan(tags):
            return False
        if etype == ETH_P_ARP:
            arp = self.parse_arp(payload)
            if arp and arp[0] == 1 and arp[4] == self.ip:
                _op, sha, spa, _tha, _tpa = arp
                self.send_arp(2, src, sha, spa)
                log("arp-request who-has %s tell %s (%s) vlan %d: answered"
                    % (self.ip_str, socket.inet_ntoa(spa), mac_str(sha),
                       self.vid))
                return True
        elif etype == ETH_P_IP and dst == self.mac:
            ip = self.parse_ipv4(payload)
            if ip and ip[0] == 1 and ip[2] == self.ip and len(ip[3]) >= 8:
                body = ip[3]
                if body[0] == 8 and checksum(body) == 0:
                    _t, _c, _ck, ident, seq = struct.unpack_from("!BBHHH", body)
                    reply = self.icmp(0, ident, seq, body[8:])
                    self.send(src, ETH_P_IP, self.ipv4(ip[1], 1, reply))
                    log("echo-request from %s seq %d vlan %d: answered"
                        % (socket.inet_ntoa(ip[1]), seq, self.vid))
                    return True
        return False

    def note_ignored(self, frame):
        if self.args.verbose:
            tags, src, dst, etype, _p = frame
            log("ignored %s > %s type 0x%04x %s"
                % (mac_str(src), mac_str(dst), etype, self.tags_str(tags)))

    # ------------------------------------------------------------- modes
    def resolve(self, target, timeout):
        """ARP for target on our VLAN; returns its MAC or None."""
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_send:
                self.send_arp(1, BROADCAST, ZERO_MAC, target)
                next_send = now + 1.0
            frame = self.recv(min(deadline, next_send))
            if frame is None:
                continue
            if self.handle_request(frame):
                continue
            tags, _src, _dst, etype, payload = frame
            if etype == ETH_P_ARP:
                arp = self.parse_arp(payload)
                if arp and arp[0] == 2 and arp[2] == target:
                    if self.on_our_vlan(tags):
                        log("arp-reply %s is-at %s vlan %d"
                            % (socket.inet_ntoa(target), mac_str(arp[1]),
                               self.vid))
                        return arp[1]
                    log("arp-reply %s is-at %s on WRONG %s (ignored)"
                        % (socket.inet_ntoa(target), mac_str(arp[1]),
                           self.tags_str(tags)))
                    continue
            self.note_ignored(frame)

    def ping(self):
        a = self.args
        target = socket.inet_aton(a.ping)
        mac = self.resolve(target, a.timeout)
        got = 0
        if mac is None:
            log("arp: no reply for %s on vlan %d within %gs"
                % (a.ping, self.vid, a.timeout))
        else:
            for seq in range(1, a.count + 1):
                data = struct.pack("!d", time.time()) + bytes(range(48))
                pkt = self.ipv4(target, 1, self.icmp(8, self.ident, seq, data),
                                ident=seq)
                t0 = time.monotonic()
                self.send(mac, ETH_P_IP, pkt)
                deadline = t0 + a.timeout
                ok = False
                while not ok:
                    frame = self.recv(deadline)
                    if frame is None:
                        break
                    if self.handle_request(frame):
                        continue
                    tags, _src, dst, etype, payload = frame
                    ip = self.parse_ipv4(payload) if etype == ETH_P_IP else None
                    if (ip and ip[0] == 1 and ip[1] == target
                            and ip[2] == self.ip and len(ip[3]) >= 8
                            and dst == self.mac):
                        typ, _c, _ck, ident, rseq = struct.unpack_from(
                            "!BBHHH", ip[3])
                        if typ == 0 and ident == self.ident and rseq == seq:
                            ms = (time.monotonic() - t0) * 1000.0
                            if self.on_our_vlan(tags):
                                log("echo-reply %s seq %d vlan %d time %.1fms"
                                    % (a.ping, seq, self.vid, ms))
                                ok = True
                            else:
                                log("echo-reply %s seq %d on WRONG %s (ignored)"
                                    % (a.ping, seq, self.tags_str(tags)))
                            continue
                    self.note_ignored(frame)
                if ok:
                    got += 1
                else:
                    log("echo-timeout %s seq %d vlan %d" % (a.ping, seq, self.vid))
        log("vlan-probe: %d/%d replies on vlan %d" % (got, a.count, self.vid))
        return 0 if got == a.count else 1

    def expect_silence(self):
        a = self.args
        mac = self.resolve(socket.inet_aton(a.ping), a.timeout)
        if mac is not None:
            log("vlan-probe: UNEXPECTED answer from %s on vlan %d" % (a.ping, self.vid))
            return 1
        log("vlan-probe: silence on vlan %d (no arp reply for %s in %gs)"
            % (self.vid, a.ping, a.timeout))
        return 0

    def respond(self):
        deadline = time.monotonic() + self.args.timeout
        answered = 0
        while True:
            frame = self.recv(deadline)
            if frame is None:
                break
            if self.handle_request(frame):
                answered += 1
            else:
                self.note_ignored(frame)
        log("vlan-probe: responder answered %d requests on vlan %d"
            % (answered, self.vid))
        return 0


def main(argv=None):
    p = argparse.ArgumentParser(
        description="802.1Q-tagged ARP/ICMP probe on a raw interface")
    p.add_argument("--dev", required=True, help="interface to use")
    p.add_argument("--vid", type=int, required=True, help="VLAN id (0-4094)")
    p.add_argument("--ip", required=True, help="our IPv4 address")
    p.add_argument("--ping", help="IPv4 address to ARP for and ping")
    p.add_argument("--count", type=int, default=3, help="echo requests (3)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds to wait for the ARP reply and for each echo "
                        "reply; total run time with --respond (5)")
    p.add_argument("--pcp", type=int, default=0, help="802.1p priority (0-7)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--expect-silence", action="store_true",
                      help="succeed only if no ARP reply arrives")
    mode.add_argument("--respond", action="store_true",
                      help="only answer ARP/echo requests for --ip until timeout")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log frames that were ignored")
    a = p.parse_args(argv)
    if not 0 <= a.vid <= 4094:
        p.error("--vid must be 0..4094")
    if not 0 <= a.pcp <= 7:
        p.error("--pcp must be 0..7")
    if a.count < 1:
        p.error("--count must be >= 1")
    if a.timeout <= 0:
        p.error("--timeout must be > 0")
    if not a.respond and not a.ping:
        p.error("--ping is required unless --respond is given")
    try:
        socket.inet_aton(a.ip)
        if a.ping:
            socket.inet_aton(a.ping)
    except OSError:
        p.error("bad IPv4 address")
    try:
        probe = Probe(a)
        if a.respond:
            return probe.respond()
        if a.expect_silence:
            return probe.expect_silence()
        return probe.ping()
    except (OSError, ValueError) as e:
        print("vlan-probe: error: %s" % e, file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 1


if __name__ == "__main__":
    sys.exit(main())
