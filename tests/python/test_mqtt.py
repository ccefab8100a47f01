"""paho-mqtt against mqgate: MQTT 3.1.1 and 5.0 behaviour as a real client sees it."""

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import unique
from mqtt_clients import Collector

VERSIONS = [pytest.param(mqtt.MQTTv311, id="3.1.1"), pytest.param(mqtt.MQTTv5, id="5.0")]


@pytest.mark.parametrize("protocol", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_subscribe_round_trip_is_byte_exact(mqtt_gateway, protocol, qos):
    topic = unique("rt") + "/data"
    port = mqtt_gateway.port("mqtt")
    sub = Collector(port, unique("sub"), protocol)
    pub = Collector(port, unique("pub"), protocol)
    sub.subscribe(topic, qos)
    payload = bytes(range(256)) + b"\x00tail"
    pub.publish(topic, payload, qos=qos)
    got = sub.next()
    assert got.topic == topic
    assert got.payload == payload
    assert got.qos == qos
    sub.close()
    pub.close()


@pytest.mark.parametrize("protocol", VERSIONS)
def test_wildcards_and_dollar_topics(mqtt_gateway, protocol):
    base = unique("wild")
    port = mqtt_gateway.port("mqtt")
    plus = Collector(port, unique("plus"), protocol)
    hash_ = Collector(port, unique("hash"), protocol)
    plus.subscribe(f"{base}/+/temp", 1)
    hash_.subscribe("#", 1)
    pub = Collector(port, unique("pub"), protocol)
    pub.publish(f"{base}/kitchen/temp", b"21", qos=1)
    assert plus.next().topic == f"{base}/kitchen/temp"
    topics = set()
    while True:
        message = hash_.next()
        topics.add(message.topic)
        if message.topic == f"{base}/kitchen/temp":
            break
    pub.publish("$SYS/" + base, b"internal", qos=1)
    pub.publish(f"{base}/marker", b"m", qos=1)
    while True:
        message = hash_.next()
        assert not message.topic.startswith("$"), "a leading # must not match $ topics"
        if message.topic == f"{base}/marker":
            break
    for client in (plus, hash_, pub):
        client.close()


@pytest.mark.parametrize("protocol", VERSIONS)
def test_dot_in_a_topic_level_round_trips(mqtt_gateway, protocol):
    topic = unique("dots") + "/v1.2/a.b"
    port = mqtt_gateway.port("mqtt")
    sub = Collector(port, unique("sub"), protocol)
    sub.subscribe(topic.rsplit("/", 1)[0] + "/+", 1)
    pub = Collector(port, unique("pub"), protocol)
    pub.publish(topic, b"x", qos=1)
    assert sub.next().topic == topic
    sub.close()
    pub.close()


@pytest.mark.parametrize("protocol", VERSIONS)
def test_retained_message_reaches_later_wildcard_subscriber_and_is_cleared(mqtt_gateway, protocol):
    base = unique("ret")
    port = mqtt_gateway.port("mqtt")
    pub = Collector(port, unique("pub"), protocol)
    pub.publish(f"{base}/status", b"online", qos=1, retain=True)
    sub = Collector(port, unique("sub"), protocol)
    sub.subscribe(f"{base}/#", 1)
    message = sub.next()
    assert (message.topic, message.payload, message.retain) == (f"{base}/status", b"online", True)
    sub.close()
    pub.publish(f"{base}/status", b"", qos=1, retain=True)
    later = Collector(port, unique("later"), protocol)
    later.subscribe(f"{base}/#", 1)
    assert later.nothing_more(), "an empty retained publish clears the topic"
    later.close()
    pub.close()


@pytest.mark.parametrize("protocol", VERSIONS)
def test_will_fires_on_abnormal_close_not_on_disconnect(mqtt_gateway, protocol):
    base = unique("will")
    port = mqtt_gateway.port("mqtt")
    watcher = Collector(port, unique("watch"), protocol)
    watcher.subscribe(f"{base}/#", 1)
    polite = Collector(port, unique("polite"), protocol,
                       will={"topic": f"{base}/polite", "payload": b"gone", "qos": 1})
    polite.close()
    rude = Collector(port, unique("rude"), protocol,
                     will={"topic": f"{base}/rude", "payload": b"gone", "qos": 1})
    rude.drop()
    message = watcher.next()
    assert (message.topic, message.payload) == (f"{base}/rude", b"gone")
    assert watcher.nothing_more(), "no will after a clean DISCONNECT"
    watcher.close()


@pytest.mark.parametrize("protocol", VERSIONS)
def test_wrong_password_is_refused(mqtt_gateway, protocol):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique("bad"), protocol=protocol)
    client.username_pw_set("guest", "wrong")
    answered = threading.Event()
    codes = []

    def on_connect(_client, _userdata, _flags, reason, _properties):
        codes.append(reason)
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", mqtt_gateway.port("mqtt"))
    client.loop_start()
    try:
        assert answered.wait(10), "no CONNACK"
    finally:
        client.loop_stop()
    assert codes[0].is_failure
    # "Bad user name or password": 0x86 in 5.0, and 3.1.1's return code 4, which paho reports
    # as the same reason (RabbitMQ and EMQX answer so; Mosquitto says "not authorised").
    assert codes[0].value == 134


def test_v5_properties_round_trip(mqtt_gateway):
    topic = unique("props") + "/x"
    port = mqtt_gateway.port("mqtt")
    sub = Collector(port, unique("sub"), mqtt.MQTTv5)
    sub.subscribe(topic, 1)
    pub = Collector(port, unique("pub"), mqtt.MQTTv5)
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = [("region", "eu"), ("trace", "abc")]
    properties.ContentType = "application/json"
    properties.ResponseTopic = "replies/here"
    properties.CorrelationData = b"\x01\x02\xff"
    pub.publish(topic, b"{}", qos=1, properties=properties)
    got = sub.next().properties
    assert ("region", "eu") in got.UserProperty and ("trace", "abc") in got.UserProperty
    assert got.ContentType == "application/json"
    assert got.ResponseTopic == "replies/here"
    assert got.CorrelationData == b"\x01\x02\xff"
    sub.close()
    pub.close()


@pytest.mark.parametrize("protocol", VERSIONS)
def test_shared_subscription_delivers_each_message_once(mqtt_gateway, protocol):
    base = unique("shared")
    group = unique("g")
    port = mqtt_gateway.port("mqtt")
    members = [Collector(port, unique("m"), protocol) for _ in range(2)]
    for member in members:
        member.subscribe(f"$share/{group}/{base}/#", 1)
    pub = Collector(port, unique("pub"), protocol)
    for i in range(20):
        pub.publish(f"{base}/{i}", str(i).encode(), qos=1)
    received = []
    while len(received) < 20:
        for member in members:
            try:
                received.append(member.next(timeout=0.2).payload)
            except Exception:
                pass
    assert sorted(received, key=int) == [str(i).encode() for i in range(20)]
    for member in members:
        assert member.nothing_more(0.3)
        member.close()
    pub.close()


@pytest.mark.parametrize("protocol", VERSIONS)
def test_persistent_session_keeps_messages_while_offline(mqtt_gateway, protocol):
    topic = unique("offline") + "/t"
    client_id = unique("durable")
    port = mqtt_gateway.port("mqtt")
    properties = None
    if protocol == mqtt.MQTTv5:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 300
    first = Collector(port, client_id, protocol, clean=False, properties=properties)
    first.subscribe(topic, 1)
    first.close()
    pub = Collector(port, unique("pub"), protocol)
    for i in range(3):
        pub.publish(topic, str(i).encode(), qos=1)
    second = Collector(port, client_id, protocol, clean=False, properties=properties)
    assert second.session_present
    assert [second.next().payload for _ in range(3)] == [b"0", b"1", b"2"]
    second.close()
    pub.close()
