#!/usr/bin/env python3
"""The report of benches/compare.sh: medians, ratios, targets, plots.

    python benches/report.py target/bench-results/<UTC time>     # write the report
    python benches/report.py --self-test                          # check this script

Reads a results directory written by benches/compare.sh: meta.json (machine, versions, the
command), selfcheck__generator__q{0,1}.json (the generator's ceiling) and one
`<scenario>__<broker>__<rep>.json` per run (mqgate-bench's --json report, or a stub with
"failed": true when the run wrote none). For every (scenario, broker) it takes the median
with min-max over the repetitions of each figure, the ratios of mqgate's medians to each
peer's, and checks issue 6's targets. It writes the whole section between the marker lines
`<!-- compare:begin -->` and `<!-- compare:end -->` of docs/BENCHMARKS.md (inserting them,
before the first `## ` heading, when absent) and leaves the rest of the file alone, and it
draws docs/bench/throughput.png and docs/bench/latency.png (matplotlib, when importable).

Only the standard library is needed for the tables (and the self-test); matplotlib for the
PNGs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- compare:begin -->"
END = "<!-- compare:end -->"
BROKERS = ["mqgate", "mosquitto", "rabbitmq"]
BROKER_TITLE = {"mqgate": "mqgate", "mosquitto": "Mosquitto", "rabbitmq": "RabbitMQ"}
PEERS = ["mosquitto", "rabbitmq"]
# A result at or above this share of the generator's ceiling may be the generator's limit.
GENERATOR_BOUND_SHARE = 0.7

# Scenario name -> (kind, description). The order is the report's.
SCENARIOS = {
    "mqtt-fanin-q0": ("throughput", "MQTT fan-in, QoS 0: 4 publishers -> 1 subscriber, unthrottled"),
    "mqtt-fanin-q1": ("throughput", "MQTT fan-in, QoS 1: 4 publishers -> 1 subscriber, unthrottled"),
    "mqtt-fanout": ("throughput", "MQTT fan-out, QoS 1: 1 publisher -> 100 subscribers (deliveries/s)"),
    "amqp-fanin-q0": ("throughput", "AMQP fan-in, no confirms, auto-ack: 4 -> 1"),
    "amqp-fanin-q1": ("throughput", "AMQP fan-in, publisher confirms + manual acks: 4 -> 1"),
    "stomp-fanin-q0": ("throughput", "STOMP fan-in, no receipts, auto ack: 4 -> 1"),
    "stomp-fanin-q1": ("throughput", "STOMP fan-in, receipts + client acks: 4 -> 1"),
    "cross": ("throughput", "Cross-protocol, QoS 1: 1 MQTT publisher -> 1 STOMP + 1 AMQP subscriber"),
    "cross-baseline": ("throughput", "Same shape, MQTT only, QoS 1: 1 MQTT publisher -> 2 MQTT subscribers"),
    "mqtt-latency-q0": ("latency", "MQTT QoS 0, 1 -> 1 at 1000 msg/s"),
    "mqtt-latency-q1": ("latency", "MQTT QoS 1, 1 -> 1 at 1000 msg/s"),
    "amqp-latency-q0": ("latency", "AMQP, no confirms, 1 -> 1 at 1000 msg/s"),
    "stomp-latency-q0": ("latency", "STOMP, no receipts, 1 -> 1 at 1000 msg/s"),
    "mqtt-pairs": ("pairs", "MQTT pairs: N publisher/subscriber pairs, 10 msg/s each"),
    "mqtt-idle": ("idle", "MQTT idle connections"),
}
RUN_FILE = re.compile(r"^(?P<scenario>[a-z0-9-]+)__(?P<broker>[a-z0-9-]+)__(?P<rep>\d+)\.json$")


# ------------------------------------------------------------------------------------------
# Reading and summarising.


@dataclass
class Stat:
    """Median with min and max over the repetitions."""

    median: float
    low: float
    high: float
    n: int

    @staticmethod
    def of(values) -> "Stat | None":
        values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if not values:
            return None
        return Stat(statistics.median(values), min(values), max(values), len(values))


def metrics(run: dict) -> dict:
    """The figures of one run's report, None where the run has none."""
    if run.get("failed"):
        return {"ok": False, "failed": True}
    latency = run.get("latency_us") or {}
    lag = run.get("send_lag_us") or {}
    params = run.get("params") or {}
    cpu = run.get("broker_cpu_s")
    per_cpu = run.get("msgs_per_cpu_s")
    delivered = max(0, (run.get("expected") or 0) - (run.get("lost") or 0))
    has_messages = (latency.get("count") or 0) > 0 or delivered > 0
    return {
        "ok": bool(run.get("ok")),
        "failed": False,
        "msgs_per_s": run.get("msgs_per_s") if has_messages else None,
        "mb_per_s": run.get("mb_per_s") if has_messages else None,
        "sent_per_s": run.get("sent_per_s") if has_messages else None,
        "p50": latency.get("p50") if latency.get("count") else None,
        "p99": latency.get("p99") if latency.get("count") else None,
        "p999": latency.get("p999") if latency.get("count") else None,
        "lag_p999": lag.get("p999") if lag.get("count") else None,
        "cpu_s": cpu,
        "generator_cpu_s": run.get("generator_cpu_s"),
        "msgs_per_cpu_s": per_cpu,
        "cpu_us_per_msg": (1e6 / per_cpu) if per_cpu else None,
        "lost": run.get("lost"),
        "duplicates": run.get("duplicates"),
        "connections_asked": params.get("connections"),
        "connections_open": run.get("connections_open"),
        "connects_per_s": run.get("connects_per_s"),
        "rss_per_conn": run.get("rss_per_conn_bytes"),
        "rss_after": run.get("rss_after_bytes"),
        "pairs": params.get("publishers"),
        "qos": params.get("qos"),
        "rate": params.get("rate"),
        "target": run.get("target", ""),
        "errors": run.get("errors") or [],
    }


@dataclass
class Cell:
    """One (scenario, broker): its runs and their summaries."""

    scenario: str
    broker: str
    runs: list
    stats: dict

    def stat(self, key: str) -> Stat | None:
        return self.stats.get(key)

    @property
    def ok_runs(self) -> int:
        return sum(1 for run in self.runs if run["ok"])

    def worst(self, key: str):
        values = [run.get(key) for run in self.runs if run.get(key) is not None]
        return max(values) if values else None


STAT_KEYS = [
    "msgs_per_s", "mb_per_s", "sent_per_s", "p50", "p99", "p999", "lag_p999", "cpu_s", "generator_cpu_s",
    "msgs_per_cpu_s", "cpu_us_per_msg", "lost", "duplicates", "connections_open",
    "connects_per_s", "rss_per_conn", "rss_after",
]


def load(results: Path):
    """(meta, ceilings, cells) of a results directory."""
    meta_path = results / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    ceilings = {}
    for qos in (0, 1):
        path = results / f"selfcheck__generator__q{qos}.json"
        if path.exists():
            try:
                check = json.loads(path.read_text())
                ceilings[qos] = {
                    "publish": check["publish"]["msgs_per_s"],
                    "receive": check["receive"]["msgs_per_s"],
                    "publishers": check["publish"].get("publishers"),
                    "ok": check.get("ok", False),
                }
            except (ValueError, KeyError):
                pass
    grouped: dict[tuple, list] = {}
    for path in sorted(results.iterdir()):
        match = RUN_FILE.match(path.name)
        if not match or match["broker"] == "generator":
            continue
        try:
            run = json.loads(path.read_text())
        except ValueError:
            run = {"failed": True}
        entry = metrics(run)
        entry["rep"] = int(match["rep"])
        grouped.setdefault((match["scenario"], match["broker"]), []).append(entry)
    cells = {}
    for (scenario, broker), runs in grouped.items():
        runs.sort(key=lambda run: run["rep"])
        good = [run for run in runs if not run["failed"]]
        stats = {key: Stat.of(run.get(key) for run in good) for key in STAT_KEYS}
        cells[(scenario, broker)] = Cell(scenario, broker, runs, stats)
    return meta, ceilings, cells


def ceiling_of(cell: Cell, ceilings: dict) -> float | None:
    """The generator's ceiling for an unthrottled MQTT run, None where selfcheck does not
    cover it (STOMP and AMQP clients, paced runs)."""
    good = [run for run in cell.runs if not run["failed"]]
    if not good:
        return None
    run = good[0]
    if not str(run["target"]).startswith("mqtt") or (run["rate"] or 0) > 0:
        return None
    if cell.scenario.startswith("cross"):
        return None
    qos = run["qos"] or 0
    check = ceilings.get(qos)
    if not check:
        return None
    if "fanout" in cell.scenario:
        # Deliveries: every subscriber runs the receive path measured by selfcheck.
        return check["receive"]
    return min(check["publish"], check["receive"])


def generator_bound(cell: Cell, ceilings: dict) -> str:
    stat = cell.stat("msgs_per_s")
    ceiling = ceiling_of(cell, ceilings)
    if ceiling is None or stat is None:
        return ""
    share = stat.median / ceiling if ceiling > 0 else 0
    if share >= GENERATOR_BOUND_SHARE:
        return f"generator-bound ({share:.0%} of ceiling)"
    return ""


# ------------------------------------------------------------------------------------------
# Formatting.


def num(value: float | None) -> str:
    if value is None:
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.2f}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.0f}k"
    if magnitude >= 1e3:
        return f"{value / 1e3:.1f}k"
    if magnitude >= 100 or value == int(value):
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def show(stat: Stat | None, fmt=num) -> str:
    if stat is None:
        return "n/a"
    if stat.n == 1 or fmt(stat.low) == fmt(stat.high):
        return fmt(stat.median)
    return f"{fmt(stat.median)} ({fmt(stat.low)}–{fmt(stat.high)})"


def kib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1024:.2f} KiB"


def mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1048576:.0f} MiB"


def ratio(cells, scenario, key, peer) -> float | None:
    ours = cells.get((scenario, "mqgate"))
    theirs = cells.get((scenario, peer))
    if not ours or not theirs:
        return None
    a, b = ours.stat(key), theirs.stat(key)
    if a is None or b is None or b.median == 0:
        return None
    return a.median / b.median


def show_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or ("l" + "r" * (len(header) - 1))
    marks = ["---" if a == "l" else "---:" for a in align]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def cells_in_order(cells, kind):
    for scenario, (scenario_kind, _) in SCENARIOS.items():
        if scenario_kind != kind:
            continue
        for broker in BROKERS:
            if (scenario, broker) in cells:
                yield cells[(scenario, broker)]
    known = set(SCENARIOS)
    for (scenario, broker), cell in sorted(cells.items()):
        if scenario not in known and kind == "throughput":
            yield cell


def runs_ok(cell: Cell) -> str:
    return f"{cell.ok_runs}/{len(cell.runs)}"


# ------------------------------------------------------------------------------------------
# Targets.


def targets(cells, meta) -> list[list[str]]:
    rows = []

    def add(label, measured, passed):
        if passed is None or isinstance(passed, str):
            status = passed or "n/a"
        else:
            status = "PASS" if passed else "FAIL"
        rows.append([label, measured, status])

    def ratio_target(label, scenario, key, peer, wanted):
        value = ratio(cells, scenario, key, peer)
        add(label, show_ratio(value), None if value is None else value >= wanted)

    for qos in (0, 1):
        scenario = f"mqtt-fanin-q{qos}"
        ratio_target(f"MQTT QoS {qos} fan-in msgs/s >= 2x Mosquitto", scenario, "msgs_per_s", "mosquitto", 2.0)
        ratio_target(f"MQTT QoS {qos} fan-in msgs per broker CPU s >= Mosquitto", scenario, "msgs_per_cpu_s", "mosquitto", 1.0)
    cell = cells.get(("mqtt-fanin-q1", "mqgate"))
    if cell:
        lost, dups = cell.worst("lost"), cell.worst("duplicates")
        clean = lost == 0 and dups == 0 and not any(run["failed"] for run in cell.runs)
        add("MQTT QoS 1 fan-in: zero lost (and no duplicates), every repetition",
            f"lost {num(lost)}, duplicates {num(dups)} (worst run)", clean)
    else:
        add("MQTT QoS 1 fan-in: zero lost (and no duplicates), every repetition", "n/a", None)
    ratio_target("MQTT fan-out (1 -> 100) deliveries/s >= 3x Mosquitto", "mqtt-fanout", "msgs_per_s", "mosquitto", 3.0)
    for scenario, label in (
        ("amqp-fanin-q0", "AMQP no confirms"),
        ("amqp-fanin-q1", "AMQP confirms + manual acks"),
        ("stomp-fanin-q0", "STOMP no receipts"),
        ("stomp-fanin-q1", "STOMP receipts + client acks"),
    ):
        ratio_target(f"{label}: msgs/s >= 3x RabbitMQ", scenario, "msgs_per_s", "rabbitmq", 3.0)
        ratio_target(f"{label}: msgs per broker CPU s >= 5x RabbitMQ", scenario, "msgs_per_cpu_s", "rabbitmq", 5.0)
    cross = cells.get(("cross", "mqgate"))
    base = cells.get(("cross-baseline", "mqgate"))
    if cross and base and cross.stat("msgs_per_s") and base.stat("msgs_per_s"):
        value = cross.stat("msgs_per_s").median / base.stat("msgs_per_s").median
        add("Cross-protocol (MQTT in, STOMP + AMQP out) within 10% of MQTT-only: msgs/s >= 0.9x",
            f"{value:.2f}x of MQTT-only", value >= 0.9)
    else:
        add("Cross-protocol (MQTT in, STOMP + AMQP out) within 10% of MQTT-only: msgs/s >= 0.9x", "n/a", None)
    cell = cells.get(("mqtt-latency-q0", "mqgate"))
    for key, label, bound in (("p50", "p50", 60), ("p99", "p99", 150), ("p999", "p99.9", 1000)):
        stat = cell.stat(key) if cell else None
        add(f"MQTT 1 -> 1 latency at 1000 msg/s (QoS 0): {label} < {bound} us",
            "n/a" if stat is None else f"{num(stat.median)} us", None if stat is None else stat.median < bound)
    cell = cells.get(("mqtt-idle", "mqgate"))
    if cell:
        asked = max((run.get("connections_asked") or 0) for run in cell.runs)
        opened = cell.stat("connections_open")
        held = opened is not None and opened.low >= 10000
        note = "" if asked >= 10000 else f" (only {asked} asked: quick run)"
        add("10,000 idle MQTT connections held", f"{num(opened.low if opened else None)} open (fewest){note}",
            held if asked >= 10000 else None)
        rss = cell.stat("rss_per_conn")
        add("Idle MQTT connection: <= 2 KB RSS each", kib(rss.median if rss else None),
            None if rss is None else rss.median <= 2048)
    else:
        add("10,000 idle MQTT connections held", "n/a", None)
        add("Idle MQTT connection: <= 2 KB RSS each", "n/a", None)
    value = ratio(cells, "mqtt-pairs", "cpu_us_per_msg", "mosquitto")
    ours = cells.get(("mqtt-pairs", "mqgate"))
    ours_cpu = ours.stat("cpu_us_per_msg") if ours else None
    add("MQTT pairs: broker CPU per message vs Mosquitto (reported; lower is better)",
        "n/a" if value is None else f"{num(ours_cpu.median)} us/msg, {value:.2f}x Mosquitto's",
        "reported" if value is not None else None)
    return rows


# ------------------------------------------------------------------------------------------
# The section.


def section(meta, ceilings, cells, results: Path, doc: Path, pngs: dict) -> str:
    out = [BEGIN, "## Side-by-side comparison", ""]
    out += [
        "Generated by `benches/report.py` from the results of `benches/compare.sh`: do not edit",
        "by hand between the compare markers.",
        "",
        "### How to run the comparison",
        "",
        "```sh",
        "bash benches/compare.sh",
        "```",
        "",
        "It installs `mosquitto` and `rabbitmq-server` from Debian when absent (and a `.venv-bench`",
        "with matplotlib), builds `mqgate` and `mqgate-bench` in release mode, starts the three",
        "brokers on ports of their own (mqgate 21883/26613/25673, Mosquitto 31883, RabbitMQ",
        "31884/30613/30672 with its MQTT and STOMP plugins), checks the generator against its",
        "in-process sink (`mqgate-bench selfcheck`), then runs every scenario against every broker",
        "that speaks it, interleaved, 3 times (about 20-25 minutes on 2 cores), and rewrites this",
        "section and `docs/bench/*.png`. `--quick` is a 1-repetition smoke test with short runs,",
        "`--only SCENARIO[,...]` and `--reps N` narrow or widen it, `--list` shows the scenarios and",
        "their exact `mqgate-bench` arguments. Results stay in `target/bench-results/<UTC time>/`",
        "(one JSON per run, `meta.json`, logs); redo this section from one with",
        "`.venv-bench/bin/python benches/report.py target/bench-results/<UTC time>`.",
        "",
    ]
    command = meta.get("command", "bash benches/compare.sh")
    out += ["### This run", ""]
    if meta.get("quick"):
        out += [
            "**Quick smoke run (`--quick`): one repetition of short runs and 1,000 idle",
            "connections. Not figures of record: rerun without `--quick` for those.**",
            "",
        ]
    mem = meta.get("mem_total_kb")
    out += [
        f"- Command: `{command}` ({meta.get('reps', '?')} repetition(s)), {meta.get('date', '?')}; "
        f"results `{display_path(results)}`.",
        f"- Machine: {meta.get('nproc', '?')} CPUs ({meta.get('cpu_model', '?')}), "
        f"{(mem or 0) / 1048576:.0f} GiB RAM, {meta.get('kernel', '?')}, open-file limit {meta.get('open_files', '?')}.",
        f"- mqgate `{meta.get('mqgate_version', '?')}` (release build; {meta.get('mqgate_config', '')}).",
        f"- Mosquitto: {meta.get('mosquitto_version', '?')} ({meta.get('mosquitto_config', '')}).",
        f"- RabbitMQ {meta.get('rabbitmq_version', '?')} on Erlang {meta.get('erlang_version', '?')} "
        f"({meta.get('rabbitmq_config', '')}).",
    ]
    if meta.get("unavailable"):
        out += [f"- **Could not start: {', '.join(BROKER_TITLE.get(b, b) for b in meta['unavailable'])}; "
                "their runs were skipped** (see the results' logs/broker-*.log)."]
    out += [
        "- Every broker and the generator share the same cores; all three brokers stay up during",
        "  every run, and each run starts once its broker has gone quiet (under 10% of a core),",
        "  so a backlog or 10,000 closing connections left by the previous run do not count",
        "  against the next. Each cell is the median over the",
        "  repetitions with (min–max); `runs OK` counts runs with no client error, no deadline and,",
        "  at QoS 1, no loss or duplicate. 100-byte payloads. MQTT clients log in anonymously,",
        "  STOMP and AMQP clients as guest (cross-protocol runs: guest for all).",
        "",
    ]

    out += ["### Generator ceiling", ""]
    if ceilings:
        rows = []
        for qos in sorted(ceilings):
            check = ceilings[qos]
            rows.append([
                f"QoS {qos}",
                num(check["publish"]),
                num(check["receive"]),
                "OK" if check["ok"] else "NOT OK",
            ])
        out += table(["selfcheck", f"publish msgs/s ({ceilings[min(ceilings)].get('publishers', 4)} clients)",
                      "receive msgs/s (1 client)", "status"], rows)
        out += [
            "",
            "`mqgate-bench selfcheck` against an in-process sink sharing the cores: lower bounds of",
            "what the generator's MQTT clients can do here. An unthrottled MQTT result at",
            f"{GENERATOR_BOUND_SHARE:.0%} or more of the matching ceiling (fan-in: the lower of publish and",
            "receive; fan-out: receive) is marked generator-bound. STOMP and AMQP clients have no",
            "sink, so their runs are not checked (lapin's AMQP client tops out near 35-40k msg/s with a",
            "core of its own here).",
            "",
        ]
    else:
        out += ["No selfcheck results.", ""]

    out += ["### Throughput (unthrottled)", ""]
    rows = []
    for cell in cells_in_order(cells, "throughput"):
        note = "; ".join(filter(None, [generator_bound(cell, ceilings), failed_note(cell)]))
        rows.append([
            f"`{cell.scenario}`", BROKER_TITLE.get(cell.broker, cell.broker),
            show(cell.stat("msgs_per_s")), show(cell.stat("mb_per_s")),
            show(cell.stat("cpu_s")), show(cell.stat("msgs_per_cpu_s")),
            show(cell.stat("generator_cpu_s")),
            num(cell.worst("lost")), num(cell.worst("duplicates")), runs_ok(cell), note,
        ])
    if rows:
        out += table(["scenario", "broker", "msgs/s", "MB/s", "broker CPU s", "msgs per CPU s",
                      "generator CPU s", "lost (worst)", "dup (worst)", "runs OK", "note"], rows,
                     "llrrrrrrrrl")
        out += ["", "Generator CPU s is the load generator's own CPU time over the run: where it is",
                "close to the broker's, or to the run's length, the two share the 2 cores and the",
                "generator's client library (lapin for AMQP, its own for STOMP, rumqttc for MQTT) may",
                "be the limit rather than the broker."]
        out += ["", "Scenarios:"]
        out += [f"- `{name}`: {desc}." for name, (kind, desc) in SCENARIOS.items()
                if kind == "throughput" and any(key[0] == name for key in cells)]
        out += ["", "msgs/s counts deliveries (fan-out: every subscriber's copy) from the first publish",
                "to the last delivery. At QoS 0, lost messages are the broker's right (it may drop",
                "what a slow subscriber cannot take); at QoS 1 they are failures. Mosquitto's default",
                "`max_queued_messages` (1000) drops even QoS 1 messages a slow subscriber cannot take;",
                "mqgate's MQTT session queue (`mqtt.session_queue_length` 10,000, `block-publisher`)",
                "refuses QoS 0 publishes while full (counted) and at QoS 1 holds publishers' PUBACKs",
                "until it drains, so nothing acknowledged is lost; msgs/s counts",
                "only what was delivered. QoS 0 runs send a fixed count (4 x 60,000 messages), QoS 1",
                "runs publish for 5 s.", ""]
    else:
        out += ["No throughput runs.", ""]

    out += ["### Latency (1 publisher -> 1 subscriber, 1000 msg/s)", ""]
    rows = []
    for cell in cells_in_order(cells, "latency"):
        rows.append([
            f"`{cell.scenario}`", BROKER_TITLE.get(cell.broker, cell.broker),
            show(cell.stat("p50")), show(cell.stat("p99")), show(cell.stat("p999")),
            show(cell.stat("lag_p999")), show(cell.stat("cpu_s")), num(cell.worst("lost")),
            runs_ok(cell), failed_note(cell),
        ])
    if rows:
        out += table(["scenario", "broker", "p50 us", "p99 us", "p99.9 us", "send lag p99.9 us",
                      "broker CPU s", "lost (worst)", "runs OK", "note"], rows, "llrrrrrrrl")
        out += ["", "End-to-end, send stamp to receipt, open loop. Send lag is how late the",
                "publisher's sends left against the schedule (the VM's timer jitter shows there).", ""]
    else:
        out += ["No latency runs.", ""]

    out += ["### Many clients at a low rate (pairs)", ""]
    rows = []
    for cell in cells_in_order(cells, "pairs"):
        pairs = next((run.get("pairs") for run in cell.runs if run.get("pairs")), None)
        rows.append([
            f"`{cell.scenario}`", BROKER_TITLE.get(cell.broker, cell.broker), num(pairs),
            show(cell.stat("msgs_per_s")), show(cell.stat("cpu_s")),
            show(cell.stat("cpu_us_per_msg")), show(cell.stat("p99")), num(cell.worst("lost")),
            runs_ok(cell), failed_note(cell),
        ])
    if rows:
        out += table(["scenario", "broker", "pairs", "msgs/s", "broker CPU s", "broker CPU us per msg",
                      "p99 us", "lost (worst)", "runs OK", "note"], rows, "llrrrrrrrl")
        out += ["", "Each pair is a publisher and a subscriber on a topic of their own, 10 msg/s each",
                "(QoS 1); broker CPU is read around the publishing phase.", ""]
    else:
        out += ["No pairs runs.", ""]

    out += ["### Idle MQTT connections", ""]
    rows = []
    for cell in cells_in_order(cells, "idle"):
        asked = max((run.get("connections_asked") or 0) for run in cell.runs)
        rows.append([
            BROKER_TITLE.get(cell.broker, cell.broker), num(asked), show(cell.stat("connections_open")),
            show(cell.stat("connects_per_s")), show(cell.stat("rss_per_conn"), kib),
            show(cell.stat("rss_after"), mib), runs_ok(cell), failed_note(cell),
        ])
    if rows:
        out += table(["broker", "asked", "open", "connects/s", "RSS per connection",
                      "RSS with all open", "runs OK", "note"], rows, "lrrrrrrl")
        out += ["", "Each broker is restarted before its idle run; RSS growth from before the first",
                "connect to 1-2 s after the last login, divided by the connections open.", ""]
    else:
        out += ["No idle runs.", ""]

    out += ["### mqgate against its peers (ratios of medians)", ""]
    rows = []
    for scenario, (kind, _) in SCENARIOS.items():
        if not any(key[0] == scenario and key[1] == "mqgate" for key in cells):
            continue
        if kind == "throughput":
            keys = [("msgs_per_s", "msgs/s (higher is better)"), ("msgs_per_cpu_s", "msgs per CPU s (higher is better)")]
        elif kind == "latency":
            keys = [("p50", "p50 latency (lower is better)"), ("p99", "p99 latency (lower is better)"),
                    ("p999", "p99.9 latency (lower is better)")]
        elif kind == "pairs":
            keys = [("cpu_us_per_msg", "CPU per msg (lower is better)")]
        else:
            keys = [("rss_per_conn", "RSS per connection (lower is better)"),
                    ("connects_per_s", "connects/s (higher is better)")]
        for key, label in keys:
            values = [ratio(cells, scenario, key, peer) for peer in PEERS]
            if all(value is None for value in values):
                continue
            rows.append([f"`{scenario}`", label] + [show_ratio(value) for value in values])
    if rows:
        out += table(["scenario", "figure", "mqgate / Mosquitto", "mqgate / RabbitMQ"], rows, "llrr")
        out += [""]
    else:
        out += ["No scenario ran on mqgate and a peer.", ""]

    out += ["### Targets (issue 6)", ""]
    out += table(["target", "measured (mqgate, median)", "result"], targets(cells, meta), "lll")
    out += ["", "n/a: not measured in this run (scenario not selected, failed, or a quick run).", ""]

    if pngs:
        out += ["### Plots", ""]
        for name, path in pngs.items():
            rel = os.path.relpath(path, doc.parent)
            out += [f"![{name}]({rel})", ""]
    out += [END]
    return "\n".join(out) + "\n"


def failed_note(cell: Cell) -> str:
    notes = []
    failed = sum(1 for run in cell.runs if run["failed"])
    if failed:
        notes.append(f"{failed} run(s) wrote no report")
    errors = sorted({error for run in cell.runs for error in run.get("errors", [])})
    if errors:
        text = errors[0].replace("|", "/")
        if len(text) > 80:
            text = text[:77] + "..."
        notes.append(f"error: {text}" + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))
    return "; ".join(notes)


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def update_doc(doc: Path, text: str) -> None:
    """Puts `text` (markers included) between the markers of `doc`, or before its first `## `
    heading when it has none; nothing else of the file changes."""
    original = doc.read_text() if doc.exists() else ""
    begin, end = original.find(BEGIN), original.find(END)
    if begin != -1 and end != -1 and end > begin:
        tail = original[end + len(END):]
        if tail.startswith("\n"):
            tail = tail[1:]
        updated = original[:begin] + text + tail
    else:
        match = re.search(r"^## ", original, flags=re.MULTILINE)
        if match:
            updated = original[:match.start()] + text + "\n" + original[match.start():]
        else:
            updated = original + ("\n" if original and not original.endswith("\n") else "") + text
    tmp = doc.with_suffix(doc.suffix + ".tmp")
    tmp.write_text(updated)
    tmp.replace(doc)


# ------------------------------------------------------------------------------------------
# Plots.

COLORS = {"mqgate": "#1f77b4", "mosquitto": "#2ca02c", "rabbitmq": "#ff7f0e"}


def plot(cells, meta, png_dir: Path) -> dict:
    """Draws the PNGs; {} without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib not importable, no plots", file=sys.stderr)
        return {}
    png_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    subtitle = "quick smoke run" if meta.get("quick") else f"median of {meta.get('reps', '?')}, bars min-max"

    # Throughput: msgs/s and msgs per CPU second per scenario and broker.
    scenarios = [name for name, (kind, _) in SCENARIOS.items()
                 if kind == "throughput" and any(key[0] == name for key in cells)]
    if scenarios:
        fig, axes = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
        width = 0.8 / len(BROKERS)
        for ax, key, label in ((axes[0], "msgs_per_s", "deliveries per second"),
                               (axes[1], "msgs_per_cpu_s", "deliveries per broker CPU second")):
            seen, lowest = set(), None
            for i, scenario in enumerate(scenarios):
                present = [b for b in BROKERS if (scenario, b) in cells and cells[(scenario, b)].stat(key)]
                for j, broker in enumerate(present):
                    stat = cells[(scenario, broker)].stat(key)
                    x = i + (j - (len(present) - 1) / 2) * width
                    ax.bar([x], [stat.median], width, yerr=[[stat.median - stat.low], [stat.high - stat.median]],
                           capsize=2, color=COLORS[broker],
                           label=None if broker in seen else BROKER_TITLE[broker])
                    ax.annotate(num(stat.median), (x, stat.high), ha="center", va="bottom", fontsize=7,
                                xytext=(0, 2), textcoords="offset points")
                    seen.add(broker)
                    lowest = stat.low if lowest is None else min(lowest, stat.low)
            ax.set_ylabel(label)
            ax.set_yscale("log")
            if lowest and lowest > 0:
                ax.set_ylim(bottom=10 ** math.floor(math.log10(lowest)))
            ax.grid(axis="y", which="both", alpha=0.3)
        axes[0].legend()
        axes[0].set_title(f"Throughput, 100-byte messages ({subtitle})")
        axes[1].set_xticks(range(len(scenarios)))
        axes[1].set_xticklabels(scenarios, rotation=30, ha="right")
        fig.tight_layout()
        path = png_dir / "throughput.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written["throughput"] = path

    # Latency: p50, p99, p99.9 per scenario and broker.
    groups = [(scenario, broker) for scenario, (kind, _) in SCENARIOS.items() if kind == "latency"
              for broker in BROKERS if (scenario, broker) in cells and cells[(scenario, broker)].stat("p50")]
    if groups:
        fig, ax = plt.subplots(figsize=(11, 5))
        width = 0.27
        lowest = []
        for q, (key, label, alpha) in enumerate((("p50", "p50", 1.0), ("p99", "p99", 0.65), ("p999", "p99.9", 0.35))):
            xs, ys, lo, hi, colors = [], [], [], [], []
            for i, (scenario, broker) in enumerate(groups):
                stat = cells[(scenario, broker)].stat(key)
                if stat is None:
                    continue
                xs.append(i + (q - 1) * width)
                ys.append(stat.median)
                lo.append(stat.median - stat.low)
                hi.append(stat.high - stat.median)
                colors.append(COLORS.get(broker, "grey"))
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, color=colors, alpha=alpha, label=label,
                   edgecolor="black", linewidth=0.4)
            for x, y, h in zip(xs, ys, hi):
                ax.annotate(num(y), (x, y + h), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 2), textcoords="offset points")
            lowest += [y - l for y, l in zip(ys, lo) if y - l > 0]
        ax.set_yscale("log")
        if lowest:
            ax.set_ylim(bottom=10 ** math.floor(math.log10(min(lowest))))
        ax.set_ylabel("microseconds")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{s}\n{BROKER_TITLE[b]}" for s, b in groups], rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.set_title(f"Latency at 1000 msg/s, 1 -> 1 ({subtitle}); per group: p50, p99, p99.9")
        handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[b]) for b in BROKERS]
        ax.legend(handles, [BROKER_TITLE[b] for b in BROKERS], loc="upper left")
        fig.tight_layout()
        path = png_dir / "latency.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written["latency"] = path
    return written


# ------------------------------------------------------------------------------------------
# Entry points.


def generate(results: Path, doc: Path, png_dir: Path, draw: bool = True) -> str:
    meta, ceilings, cells = load(results)
    if not cells:
        raise SystemExit(f"report.py: no run results in {results}")
    pngs = plot(cells, meta, png_dir) if draw else {}
    text = section(meta, ceilings, cells, results, doc, pngs)
    update_doc(doc, text)
    return text


def fake_run(scenario, target, msgs, cpu, lost=0, p50=None, qos=1, ok=True, **extra):
    latency = {"count": 1000, "p50": p50 or 100, "p90": 150, "p99": (p50 or 100) * 2,
               "p999": (p50 or 100) * 4, "max": 5000}
    run = {
        "scenario": scenario, "target": target, "out_targets": [],
        "params": {"publishers": 4, "subscribers": 1, "messages": None, "duration_s": 2.0,
                   "size": 100, "qos": qos, "rate": 0.0, "window": 256, "timeout_s": 70.0,
                   "connections": None},
        "sent": 1000, "confirmed": 1000, "refused": 0, "expected": 1000, "received": 1000 - lost,
        "lost": lost, "duplicates": 0, "out_of_order": 0, "unexpected": 0,
        "stop_reason": "complete", "elapsed_s": 1.0, "publish_s": 1.0, "sent_per_s": msgs,
        "msgs_per_s": msgs, "mb_per_s": msgs * 100 / 1e6, "latency_us": latency,
        "send_lag_us": None, "broker_cpu_s": cpu, "msgs_per_cpu_s": 1000 / cpu if cpu else None,
        "connections_open": None, "connects_per_s": None, "rss_per_conn_bytes": None,
        "rss_before_bytes": None, "rss_after_bytes": None, "errors": [], "ok": ok,
    }
    for key, value in extra.items():
        if key in run["params"]:
            run["params"][key] = value
        else:
            run[key] = value
    return run


def self_test() -> None:
    """Builds a fake results directory and checks medians, ratios, targets and the doc edit."""
    tmp = Path(tempfile.mkdtemp(prefix="report-selftest-"))
    try:
        results = tmp / "results"
        results.mkdir()
        write = lambda name, value: (results / name).write_text(json.dumps(value))
        write("meta.json", {"command": "bash benches/compare.sh --quick", "quick": True, "reps": 3,
                            "nproc": 2, "cpu_model": "Test CPU", "kernel": "Linux 6", "date": "2026-01-01T00:00:00Z"})
        for qos, publish in ((0, 800_000), (1, 150_000)):
            write(f"selfcheck__generator__q{qos}.json",
                  {"scenario": "selfcheck", "publish": {"publishers": 4, "msgs_per_s": publish},
                   "receive": {"msgs_per_s": 1_500_000}, "ok": True})
        mq, mos = "mqtt://127.0.0.1:21883", "mqtt://127.0.0.1:31883"
        # mqgate QoS 1 fan-in: 100k, 300k, 200k msgs/s -> median 200k; Mosquitto 60k, 50k, 70k -> 60k.
        for rep, (ours, theirs) in enumerate(((100_000, 60_000), (300_000, 50_000), (200_000, 70_000)), 1):
            write(f"mqtt-fanin-q1__mqgate__{rep}.json", fake_run("fan-in", mq, ours, cpu=0.01 * rep))
            write(f"mqtt-fanin-q1__mosquitto__{rep}.json", fake_run("fan-in", mos, theirs, cpu=0.02 * rep, lost=rep - 1, ok=rep == 1))
        # A run that wrote no report is counted, not averaged.
        write("mqtt-fanin-q0__mqgate__1.json", {"scenario": "mqtt-fanin-q0", "failed": True, "exit": 1})
        write("mqtt-fanin-q0__mqgate__2.json", fake_run("fan-in", mq, 140_000, cpu=0.5, qos=0))
        write("mqtt-fanin-q0__mosquitto__1.json", fake_run("fan-in", mos, 100_000, cpu=1.0, qos=0))
        for rep, p50 in enumerate((40, 50, 45), 1):
            write(f"mqtt-latency-q0__mqgate__{rep}.json", fake_run("latency", mq, 1000, cpu=0.1, p50=p50, qos=0, rate=1000.0))
        write("mqtt-idle__mqgate__1.json", fake_run("idle", mq, 0, cpu=0.2, connections=10000,
                                                     connections_open=10000, connects_per_s=5000.0,
                                                     rss_per_conn_bytes=1500.0, rss_after_bytes=30 << 20))
        write("cross__mqgate__1.json", fake_run("cross", mq, 95_000, cpu=0.1))
        write("cross-baseline__mqgate__1.json", fake_run("fan-out", mq, 100_000, cpu=0.1))

        meta, ceilings, cells = load(results)
        fanin = cells[("mqtt-fanin-q1", "mqgate")]
        assert fanin.stat("msgs_per_s") == Stat(200_000, 100_000, 300_000, 3), fanin.stat("msgs_per_s")
        assert abs(ratio(cells, "mqtt-fanin-q1", "msgs_per_s", "mosquitto") - 200_000 / 60_000) < 1e-9
        # msgs per CPU s: mqgate 1000/0.02 = 50k median, Mosquitto 1000/0.04 = 25k -> 2x.
        assert abs(ratio(cells, "mqtt-fanin-q1", "msgs_per_cpu_s", "mosquitto") - 2.0) < 1e-9
        assert cells[("mqtt-fanin-q1", "mosquitto")].worst("lost") == 2
        assert cells[("mqtt-fanin-q1", "mosquitto")].ok_runs == 1
        q0 = cells[("mqtt-fanin-q0", "mqgate")]
        assert len(q0.runs) == 2 and q0.stat("msgs_per_s").n == 1
        assert abs(ratio(cells, "mqtt-fanin-q0", "msgs_per_s", "mosquitto") - 1.4) < 1e-9
        # 200k of a min(150k, 1.5M) ceiling: generator-bound; 140k of min(800k, 1.5M): not.
        assert generator_bound(fanin, ceilings).startswith("generator-bound")
        assert generator_bound(q0, ceilings) == ""
        assert show(fanin.stat("msgs_per_s")) == "200k (100k–300k)"
        rows = {row[0]: row for row in targets(cells, meta)}
        assert rows["MQTT QoS 1 fan-in msgs/s >= 2x Mosquitto"][1:] == ["3.33x", "PASS"]
        assert rows["MQTT QoS 0 fan-in msgs/s >= 2x Mosquitto"][2] == "FAIL"
        assert rows["MQTT QoS 1 fan-in: zero lost (and no duplicates), every repetition"][2] == "PASS"
        assert rows["MQTT fan-out (1 -> 100) deliveries/s >= 3x Mosquitto"][2] == "n/a"
        assert rows["MQTT 1 -> 1 latency at 1000 msg/s (QoS 0): p50 < 60 us"][1:] == ["45 us", "PASS"]
        assert rows["MQTT 1 -> 1 latency at 1000 msg/s (QoS 0): p99.9 < 1000 us"][2] == "PASS"
        assert rows["Idle MQTT connection: <= 2 KB RSS each"][2] == "PASS"
        assert rows["10,000 idle MQTT connections held"][2] == "PASS"
        assert rows["Cross-protocol (MQTT in, STOMP + AMQP out) within 10% of MQTT-only: msgs/s >= 0.9x"][1:] == \
            ["0.95x of MQTT-only", "PASS"]

        # The doc: markers go before the first "## " heading; the rest stays byte for byte;
        # a second report replaces the section only.
        doc = tmp / "BENCHMARKS.md"
        intro = "# Benchmarks\n\nIntro text.\n\n"
        rest = "## Topic matching\n\nCriterion figures | 33 ns |\n"
        doc.write_text(intro + rest)
        text = generate(results, doc, tmp / "png", draw=False)
        body = doc.read_text()
        assert body.startswith(intro + BEGIN), body[:200]
        assert body.endswith(END + "\n\n" + rest), body[-200:]
        assert "## Side-by-side comparison" in text and "bash benches/compare.sh" in text
        assert "Quick smoke run" in text and "200k (100k–300k)" in text
        (results / "mqtt-fanin-q1__mqgate__4.json").write_text(json.dumps(fake_run("fan-in", mq, 400_000, cpu=0.01)))
        generate(results, doc, tmp / "png", draw=False)
        again = doc.read_text()
        assert again.count(BEGIN) == 1 and again.count(END) == 1
        assert again.startswith(intro + BEGIN) and again.endswith(END + "\n\n" + rest)
        assert "250k (100k–400k)" in again
        # Plots, where matplotlib is present.
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("report.py self-test: matplotlib absent, plots not checked")
        else:
            meta, _, cells = load(results)
            pngs = plot(cells, meta, tmp / "png")
            for path in pngs.values():
                assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
            assert set(pngs) == {"throughput", "latency"}, pngs
        print("report.py self-test: 1 passed, 0 failed")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", type=Path, help="a target/bench-results/<UTC time> directory")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md",
                        help="the Markdown file to update (default docs/BENCHMARKS.md)")
    parser.add_argument("--png-dir", type=Path, default=ROOT / "docs" / "bench",
                        help="where the PNGs go (default docs/bench)")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument("--print", action="store_true", help="also print the section")
    parser.add_argument("--self-test", action="store_true", help="check this script on a fixture and exit")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return
    if args.results is None:
        parser.error("a results directory is required (or --self-test)")
    text = generate(args.results, args.doc, args.png_dir, draw=not args.no_plots)
    if args.print:
        print(text)
    print(f"report.py: wrote {display_path(args.doc)} and {display_path(args.png_dir)}/*.png", file=sys.stderr)


if __name__ == "__main__":
    main()
