"""Starts the real `mqgate` binary for the Python client suites.

The gateway listens on port 0 (the kernel picks free ports, so suites run side by side) and the
fixture reads the bound addresses from its `mqgate ready` log line. Every wait is bounded.
"""

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0



def binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / "debug" / "mqgate"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `cargo build -p mqgate` first (scripts/test does)")
    return path


def default_users_block() -> str:
    """The users section of the default config (guest/guest, loopback only), reused verbatim."""
    text = (ROOT / "config" / "mqgate.yaml").read_text()
    start = text.index("\nusers:")
    end = text.index("\nvhosts:")
    return text[start:end]


class Gateway:
    """A running mqgate process and the addresses it listens on."""

    def __init__(self, process, addresses, log):
        self.process = process
        self.addresses = addresses  # {"mqtt": ("127.0.0.1", port), "mqtt+tls": ...}
        self.log = log

    def port(self, listener: str) -> int:
        return self.addresses[listener][1]


LISTENER = re.compile(r"(mqtt|stomp|amqp)(\+tls)? ([0-9.]+):(\d+)")


def start_gateway(listeners_yaml: str, extra_yaml: str = "") -> Gateway:
    directory = Path(tempfile.mkdtemp(prefix="mqgate-pytest-"))
    config = directory / "mqgate.yaml"
    config.write_text(
        "log:\n  level: info\n"
        "shutdown:\n  drain_timeout_ms: 2000\n"
        f"listeners:\n{listeners_yaml}\n"
        "auth:\n  anonymous:\n    enabled: true\n    user: guest\n"
        f"{default_users_block()}\n"
        "vhosts:\n  - name: /\n"
        f"{extra_yaml}\n"
    )
    process = subprocess.Popen(
        [str(binary()), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"},
    )
    log: list[str] = []
    ready = threading.Event()
    addresses: dict[str, tuple[str, int]] = {}

    def pump():
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if "mqgate ready" in line and not ready.is_set():
                for match in LISTENER.finditer(line):
                    name = match.group(1) + (match.group(2) or "")
                    addresses[name] = (match.group(3), int(match.group(4)))
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(READY_TIMEOUT):
        process.kill()
        raise RuntimeError("mqgate did not become ready:\n" + "".join(log))
    return Gateway(process, addresses, log)


def stop_gateway(gateway: Gateway) -> None:
    gateway.process.send_signal(signal.SIGTERM)
    try:
        gateway.process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        raise


@pytest.fixture(scope="session")
def mqtt_gateway():
    # MQTT_REFERENCE_PORT=1883 runs the suite against another broker on loopback (Mosquitto,
    # with user guest/guest) to check the suite itself against the real thing.
    reference = os.environ.get("MQTT_REFERENCE_PORT")
    if reference:
        yield Gateway(None, {"mqtt": ("127.0.0.1", int(reference))}, [])
        return
    gateway = start_gateway("  mqtt:\n    plain: 127.0.0.1:0")
    yield gateway
    stop_gateway(gateway)
    assert gateway.process.returncode == 0, "".join(gateway.log)


def unique(prefix: str) -> str:
    """A name no other test uses, so tests can run in any order and in parallel."""
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


@pytest.fixture(scope="session")
def stomp_gateway():
    # STOMP_REFERENCE_PORT=61613 runs the suite against another broker on loopback (RabbitMQ's
    # STOMP plugin, with user guest/guest) to check the suite itself against the real thing.
    reference = os.environ.get("STOMP_REFERENCE_PORT")
    if reference:
        yield Gateway(None, {"stomp": ("127.0.0.1", int(reference))}, [])
        return
    gateway = start_gateway("  stomp:\n    plain: 127.0.0.1:0")
    yield gateway
    stop_gateway(gateway)
    assert gateway.process.returncode == 0, "".join(gateway.log)


@pytest.fixture(scope="session")
def amqp_gateway():
    # AMQP_REFERENCE_PORT=5672 runs the suite against another broker on loopback (RabbitMQ,
    # with user guest/guest and vhost /) to check the suite itself against the real thing.
    reference = os.environ.get("AMQP_REFERENCE_PORT")
    if reference:
        yield Gateway(None, {"amqp": ("127.0.0.1", int(reference))}, [])
        return
    gateway = start_gateway("  amqp:\n    plain: 127.0.0.1:0")
    yield gateway
    stop_gateway(gateway)
    assert gateway.process.returncode == 0, "".join(gateway.log)


@pytest.fixture(scope="session")
def all_protocols_gateway():
    # One gateway with MQTT, STOMP and AMQP listeners, for cross-protocol tests. Against a
    # reference broker (AMQP_REFERENCE_PORT) only the listeners whose *_REFERENCE_PORT is set
    # exist; tests that need a missing one skip (RabbitMQ's STOMP plugin: STOMP_REFERENCE_PORT=61613).
    reference = os.environ.get("AMQP_REFERENCE_PORT")
    if reference:
        addresses = {"amqp": ("127.0.0.1", int(reference))}
        for name, variable in (("mqtt", "MQTT_REFERENCE_PORT"), ("stomp", "STOMP_REFERENCE_PORT")):
            if os.environ.get(variable):
                addresses[name] = ("127.0.0.1", int(os.environ[variable]))
        yield Gateway(None, addresses, [])
        return
    gateway = start_gateway(
        "  mqtt:\n    plain: 127.0.0.1:0\n"
        "  stomp:\n    plain: 127.0.0.1:0\n"
        "  amqp:\n    plain: 127.0.0.1:0"
    )
    yield gateway
    stop_gateway(gateway)
    assert gateway.process.returncode == 0, "".join(gateway.log)
