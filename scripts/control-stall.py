#!/usr/bin/env python3
"""How much a hostile control or metrics client delays forwarding.

Two namespace hosts (10.0.77.1 and .2) on one switch, `ping -i 0.01` between them, while one kind
of hostile client works on the switch's metrics address or control socket. Prints the ping's
summary (loss, rtt min/avg/max) for a quiet baseline and for each client kind. Needs root; cleans
up what it creates (namespaces named csPID-*, files under /tmp) and signals only the switch it
started.

    scripts/control-stall.py [--binary .build/debug/tapestry] [--count 500] [--flows 100000]

Client kinds: `drip` sends one byte every 150 ms to the metrics address (an HTTP request that
never ends); `silent` opens 20 control connections and says nothing; `oversize` sends 1 MiB
without a newline to the control socket; `scrape` fetches the metrics in a loop; `conntrack`
asks for the connection table in a loop (the topology has a firewall, and the ping's flow is in
it; with --flows N, N more UDP flows). At the end it prints the switch's own measure of the
longest hand-off of control work on its datapath thread, where the switch has that metric.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("--binary", default=".build/debug/tapestry")
parser.add_argument("--count", type=int, default=500)
parser.add_argument("--kinds", default="quiet,drip,silent,oversize,scrape,conntrack")
parser.add_argument("--flows", type=int, default=0, help="UDP flows to put in the connection table first")
args = parser.parse_args()

prefix = f"cs{os.getpid() % 10000}"
hosts = [f"{prefix}-a", f"{prefix}-b"]
control = f"/tmp/{prefix}.sock"
topology = f"/tmp/{prefix}.yaml"
log = f"/tmp/{prefix}.log"
metrics_port = 30000 + os.getpid() % 1000


def sh(command, check=False):
    return subprocess.run(command, shell=True, capture_output=True, text=True, check=check)


with open(topology, "w") as f:
    f.write(f"""name: stall
control: {control}
metrics: 127.0.0.1:{metrics_port}
networks:
  lan: {{ vlan: 10 }}
ports:
  a: {{ tap: {hosts[0]}, network: lan, netns: {hosts[0]} }}
  b: {{ tap: {hosts[1]}, network: lan, netns: {hosts[1]} }}
firewall: {{ default: allow }}
""")

stop = threading.Event()


def drip():
    s = socket.create_connection(("127.0.0.1", metrics_port))
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100000
    for byte in request:
        if stop.is_set():
            break
        try:
            s.send(bytes([byte]))
        except OSError:
            s = socket.create_connection(("127.0.0.1", metrics_port))
        time.sleep(0.15)
    s.close()


def silent():
    held = []
    while not stop.is_set():
        # Keep 20 open: the switch may close them (after its request deadline); open new ones.
        held = [c for c in held if c.fileno() >= 0]
        while len(held) < 20:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                c.connect(control)
            except OSError:
                break
            held.append(c)
        time.sleep(0.05)
    for c in held:
        c.close()


def oversize():
    while not stop.is_set():
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            c.connect(control)
            c.sendall(b"x" * (1 << 20))
        except OSError:
            pass
        c.close()


def scrape():
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", metrics_port))
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            while s.recv(65536):
                pass
            s.close()
        except OSError:
            pass


def conntrack():
    # The control protocol by hand, not `tapestry ctl`: starting a process per request would
    # measure the machine's process start-up competing for the CPU, not the switch.
    while not stop.is_set():
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            c.connect(control)
            c.sendall(b"conntrack\n")
            while c.recv(1 << 20):
                pass
        except OSError:
            pass
        c.close()


def ping(count):
    out = sh(f"ip netns exec {hosts[0]} ping -q -i 0.01 -c {count} -W 1 10.0.77.2").stdout
    loss = re.search(r"(\d+(?:\.\d+)?)% packet loss", out)
    rtt = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/", out)
    if not rtt:
        return f"no answer: {out.strip()}"
    return f"loss {loss.group(1)}%, rtt min/avg/max {rtt.group(1)}/{rtt.group(2)}/{rtt.group(3)} ms"


switch = None
try:
    for host in hosts:
        sh(f"ip netns add {host}", check=True)
        sh(f"ip netns exec {host} sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
    switch = subprocess.Popen([args.binary, "run", topology], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while "ready" not in open(log).read():
        if time.time() > deadline or switch.poll() is not None:
            sys.exit(f"the switch did not start: {open(log).read()}")
        time.sleep(0.05)
    for index, host in enumerate(hosts):
        sh(f"ip -n {host} addr add 10.0.77.{index + 1}/24 dev {host}")
        sh(f"ip -n {host} link set {host} up")
    sh(f"ip netns exec {hosts[0]} ping -c 3 -i 0.2 -W 2 10.0.77.2")
    if args.flows:
        # Paced, so a1's TAP queue does not overflow before the switch reads it.
        sh(f"""ip netns exec {hosts[0]} python3 -c 'import socket, time
# One socket (one source port) per 60,000 destination ports.
sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range({args.flows} // 60000 + 1)]
for i in range({args.flows}):
    sockets[i // 60000].sendto(b"x", ("10.0.77.2", 1024 + i % 60000))
    if i % 100 == 99:
        time.sleep(0.003)'""")
    print(f"binary {args.binary}, {args.count} pings at 10 ms")
    for kind in args.kinds.split(","):
        stop.clear()
        workers = [] if kind == "quiet" else [threading.Thread(target=globals()[kind], daemon=True)]
        for w in workers:
            w.start()
        time.sleep(0.3)
        print(f"{kind:10} {ping(args.count)}", flush=True)
        stop.set()
        for w in workers:
            w.join(timeout=3)
    try:
        s = socket.create_connection(("127.0.0.1", metrics_port), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        text = b""
        while chunk := s.recv(65536):
            text += chunk
        for line in text.decode().splitlines():
            if line.startswith(("tapestry_control_pause_seconds_max", "tapestry_control_work_seconds_max", "tapestry_connections ")):
                print(line)
    except OSError as error:
        print(f"no metrics: {error}")
finally:
    stop.set()
    if switch is not None:
        switch.terminate()
        try:
            switch.wait(timeout=10)
        except subprocess.TimeoutExpired:
            switch.kill()
    for host in hosts:
        sh(f"ip netns del {host}")
    if os.environ.get("KEEP_LOG"):
        print(open(log).read()[-3000:])
    for path in (topology, log):
        try:
            os.unlink(path)
        except OSError:
            pass
