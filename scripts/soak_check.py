#!/usr/bin/env python3
"""Analysis half of scripts/soak.sh (not meant to be run alone).

  soak_check.py counters POLLDIR      counters that went backwards between consecutive polls
  soak_check.py iperf FILE.json       iperf3 client result: average Gbit/s, intervals at 0 bits/s
  soak_check.py drops STATS.json      the drop reasons of the flood and rnd ports (one line each)
  soak_check.py fdb FDB.json PORT     how many MAC entries PORT holds
  soak_check.py port-up SHOW.json PORT   prints 1 if PORT is up, 0 if down

`counters` reads POLLDIR/NNNN.metrics (Prometheus text), POLLDIR/NNNN.stats.json (`ctl stats
--json`) and POLLDIR/events (lines `POLL EVENT`, written by soak.sh: which poll came right after
a reload or the device deletion). It prints one line per decrease (at most 20, then a count) and
a last line `decreases N (after a reload: R)`; exit status 1 when N > 0.
"""
import json
import os
import re
import sys

SERIES = re.compile(r'^(tapestry_[a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+)$')
COUNTERS = ("tapestry_port_frames_total", "tapestry_port_bytes_total", "tapestry_drops_total",
            "tapestry_connections_created_total")


def read_metrics(path):
    values = {}
    with open(path) as f:
        for line in f:
            m = SERIES.match(line.strip())
            if m and m.group(1) in COUNTERS:
                values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def flatten_stats(stats, prefix="stats"):
    out = {}
    if isinstance(stats, dict):
        for key, value in stats.items():
            if key in ("ok",):
                continue
            out.update(flatten_stats(value, f"{prefix}.{key}"))
    elif isinstance(stats, (int, float)) and not isinstance(stats, bool):
        out[prefix] = float(stats)
    return out


# ctl stats fields that are gauges (may go down legitimately)
GAUGES = ("stats.mac_table.entries", "stats.connections.tracked")


def counters(polldir):
    events = {}
    path = os.path.join(polldir, "events")
    if os.path.exists(path):
        for line in open(path):
            poll, _, event = line.strip().partition(" ")
            events.setdefault(int(poll), []).append(event)
    polls = sorted(int(name.split(".")[0]) for name in os.listdir(polldir) if name.endswith(".metrics"))
    previous = {}
    previous_poll = {}
    decreases = []
    compared = 0
    for poll in polls:
        current = {}
        mpath = os.path.join(polldir, f"{poll:04d}.metrics")
        if os.path.getsize(mpath) > 0:
            current.update({"metrics " + k: v for k, v in read_metrics(mpath).items()})
        spath = os.path.join(polldir, f"{poll:04d}.stats.json")
        if os.path.exists(spath) and os.path.getsize(spath) > 0:
            try:
                flat = flatten_stats(json.load(open(spath)))
                current.update({"ctl " + k: v for k, v in flat.items() if k not in GAUGES})
            except ValueError:
                pass
        for key, value in current.items():
            if key in previous:
                compared += 1
                if value < previous[key]:
                    between = [e for p in range(previous_poll[key] + 1, poll + 1) for e in events.get(p, [])]
                    decreases.append((previous_poll[key], poll, key, previous[key], value, between))
            previous[key] = value
            previous_poll[key] = poll
    after_reload = sum(1 for d in decreases if any(e.startswith("reload") for e in d[5]))
    for before, after, key, old, new, between in decreases[:20]:
        print(f"  poll {before} -> {after}: {key} went {old:.0f} -> {new:.0f}"
              f" (between: {', '.join(between) if between else 'no reload'})")
    if len(decreases) > 20:
        print(f"  ... and {len(decreases) - 20} more")
    print(f"decreases {len(decreases)} (after a reload: {after_reload}) of {compared} comparisons over {len(polls)} polls")
    return 1 if decreases else 0


def iperf(path):
    result = json.load(open(path))
    if "error" in result:
        print(f"error {result['error']}")
    intervals = [i["sum"]["bits_per_second"] for i in result.get("intervals", [])]
    zero = [n for n, bps in enumerate(intervals) if bps == 0]
    end = result.get("end", {})
    received = end.get("sum_received", {}).get("bits_per_second", 0)
    sent = end.get("sum_sent", {})
    print(f"avg_gbps {received / 1e9:.2f}")
    print(f"intervals {len(intervals)}")
    print(f"min_interval_gbps {min(intervals) / 1e9 if intervals else 0:.2f}")
    print(f"zero_intervals {len(zero)} {','.join(map(str, zero))}")
    print(f"retransmits {sent.get('retransmits', 'n/a')}")
    return 0


def drops(path):
    stats = json.load(open(path))
    for port in ("flood", "rnd", "h1", "h2", "churn"):
        entry = stats.get("ports", {}).get(port, {})
        reasons = entry.get("drops", {})
        text = " ".join(f"{k}={v}" for k, v in sorted(reasons.items())) or "none"
        print(f"{port} frames_in={entry.get('frames_in', 0)} {text}")
    mac = stats.get("mac_table", {})
    conn = stats.get("connections", {})
    print(f"mac_table entries={mac.get('entries')} learned={mac.get('learned')} evicted={mac.get('evicted')}")
    print(f"connections tracked={conn.get('tracked')} created={conn.get('created')} evicted={conn.get('evicted')}")
    return 0


def find_list(document, key):
    if isinstance(document, dict):
        if isinstance(document.get(key), list):
            return document[key]
        for value in document.values():
            found = find_list(value, key)
            if found is not None:
                return found
    return None


def fdb(path, port):
    entries = find_list(json.load(open(path)), "entries") or []
    print(sum(1 for e in entries if e.get("port") == port))
    return 0


def port_up(path, port):
    ports = find_list(json.load(open(path)), "ports") or []
    for p in ports:
        if p.get("name") == port:
            up = p.get("up")
            if up is None:
                up = p.get("state") == "up"
            print(1 if up else 0)
            return 0
    print(0)
    return 0


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "counters":
        sys.exit(counters(sys.argv[2]))
    if mode == "iperf":
        sys.exit(iperf(sys.argv[2]))
    if mode == "drops":
        sys.exit(drops(sys.argv[2]))
    if mode == "fdb":
        sys.exit(fdb(sys.argv[2], sys.argv[3]))
    if mode == "port-up":
        sys.exit(port_up(sys.argv[2], sys.argv[3]))
    print(__doc__, file=sys.stderr)
    sys.exit(64)
