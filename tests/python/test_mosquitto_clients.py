"""mosquitto_pub / mosquitto_sub against mqgate: the command-line clients operators use first."""

import shutil
import subprocess

import pytest

from conftest import unique

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_sub") is None,
    reason="mosquitto-clients is not installed (scripts/test installs it)",
)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_mosquitto_pub_reaches_mosquitto_sub(mqtt_gateway, version, qos):
    port = str(mqtt_gateway.port("mqtt"))
    topic = unique("mosq") + "/smoke"
    common = ["-h", "127.0.0.1", "-p", port, "-V", version, "-u", "guest", "-P", "guest"]
    # -C 1: exit after one message; -W 10: give up after 10 s. Retained, so the order of
    # subscriber and publisher does not matter.
    pub = subprocess.run(
        ["mosquitto_pub", *common, "-t", topic, "-m", "hello from mosquitto", "-q", qos, "-r"],
        capture_output=True, text=True, timeout=20,
    )
    assert pub.returncode == 0, pub.stderr
    sub = subprocess.run(
        ["mosquitto_sub", *common, "-t", topic, "-C", "1", "-W", "10", "-q", qos, "-v"],
        capture_output=True, text=True, timeout=20,
    )
    assert sub.returncode == 0, sub.stderr
    assert sub.stdout.strip() == f"{topic} hello from mosquitto"
    subprocess.run(
        ["mosquitto_pub", *common, "-t", topic, "-n", "-r"], capture_output=True, timeout=20,
    )
