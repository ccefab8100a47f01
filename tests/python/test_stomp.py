"""stomp.py against mqgate: STOMP 1.0, 1.1 and 1.2 as a real client sees it."""

import stomp
import pytest

from conftest import unique
from stomp_clients import Client

VERSIONS = ["1.0", "1.1", "1.2"]
SUBSCRIBING = ["1.1", "1.2"]  # stomp.py's 1.0 connection needs no id, but acks by message-id only


@pytest.mark.parametrize("version", VERSIONS)
def test_connect_and_disconnect_with_receipt(stomp_gateway, version):
    client = Client(stomp_gateway.port("stomp"), version)
    assert client.conn.is_connected()
    client.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_passcode_gets_an_error_frame(stomp_gateway, version):
    with pytest.raises(stomp.exception.ConnectFailedException):
        Client(stomp_gateway.port("stomp"), version, passcode="wrong")


@pytest.mark.parametrize("version", SUBSCRIBING)
def test_queue_round_trip_keeps_body_and_custom_headers(stomp_gateway, version):
    port = stomp_gateway.port("stomp")
    queue = f"/queue/{unique('q')}"
    consumer = Client(port, version)
    consumer.subscribe(queue, "s1")
    producer = Client(port, version)
    body = b"binary\x00body\xff"
    producer.send(queue, body, headers={"colour": "blue", "content-type": "application/octet-stream"},
                  receipt="r1")
    frame = consumer.next()
    assert frame.body == body
    assert frame.headers["colour"] == "blue"
    assert frame.headers["content-type"] == "application/octet-stream"
    assert frame.headers["destination"] == queue
    assert frame.headers["subscription"] == "s1"
    assert "message-id" in frame.headers
    consumer.close()
    producer.close()


@pytest.mark.parametrize("version", SUBSCRIBING)
def test_topic_wildcards_fan_out_to_each_subscription(stomp_gateway, version):
    port = stomp_gateway.port("stomp")
    base = unique("t")
    first = Client(port, version)
    second = Client(port, version)
    first.subscribe(f"/topic/{base}.*", "a")
    second.subscribe(f"/topic/{base}.#", "b")
    producer = Client(port, version)
    producer.send(f"/topic/{base}.x", "hello", receipt="r")
    assert first.next().body == b"hello"
    assert second.next().body == b"hello"
    for client in (first, second, producer):
        client.close()


@pytest.mark.parametrize("version", SUBSCRIBING)
def test_competing_consumers_on_a_queue_each_get_a_share(stomp_gateway, version):
    port = stomp_gateway.port("stomp")
    queue = f"/queue/{unique('work')}"
    workers = [Client(port, version) for _ in range(2)]
    for index, worker in enumerate(workers):
        worker.subscribe(queue, f"w{index}")
    producer = Client(port, version)
    for i in range(10):
        producer.send(queue, str(i), receipt=f"r{i}")
    bodies = []
    while len(bodies) < 10:
        for worker in workers:
            try:
                bodies.append(worker.next(timeout=0.2).body)
            except Exception:
                pass
    assert sorted(bodies, key=int) == [str(i).encode() for i in range(10)]
    for worker in workers:
        assert worker.nothing_more(0.3)
        worker.close()
    producer.close()


@pytest.mark.parametrize("version", SUBSCRIBING)
def test_unacked_client_messages_are_redelivered_after_disconnect(stomp_gateway, version):
    port = stomp_gateway.port("stomp")
    queue = f"/queue/{unique('redeliver')}"
    producer = Client(port, version)
    producer.send(queue, "one", receipt="r1")
    producer.send(queue, "two", receipt="r2")
    first = Client(port, version)
    first.subscribe(queue, "s", ack="client-individual")
    got_one = first.next()
    got_two = first.next()
    first.ack(got_one)
    first.close()
    second = Client(port, version)
    second.subscribe(queue, "s", ack="client-individual")
    again = second.next()
    assert again.body == got_two.body == b"two"
    assert again.headers.get("redelivered") == "true"
    second.ack(again)
    assert second.nothing_more()
    second.close()
    producer.close()


@pytest.mark.parametrize("version", SUBSCRIBING)
def test_client_ack_is_cumulative(stomp_gateway, version):
    port = stomp_gateway.port("stomp")
    queue = f"/queue/{unique('cumulative')}"
    producer = Client(port, version)
    for i in range(3):
        producer.send(queue, str(i), receipt=f"r{i}")
    consumer = Client(port, version)
    consumer.subscribe(queue, "s", ack="client")
    frames = [consumer.next() for _ in range(3)]
    consumer.ack(frames[-1])  # acknowledges all three
    consumer.conn.disconnect(receipt="bye")
    again = Client(port, version)
    again.subscribe(queue, "s", ack="client")
    assert again.nothing_more(), "all three were acknowledged by the last ACK"
    again.close()
    producer.close()


@pytest.mark.parametrize("version", SUBSCRIBING)
def test_nack_requeues_by_default(stomp_gateway, version):
    port = stomp_gateway.port("stomp")
    queue = f"/queue/{unique('nack')}"
    producer = Client(port, version)
    producer.send(queue, "retry me", receipt="r")
    consumer = Client(port, version)
    consumer.subscribe(queue, "s", ack="client-individual")
    frame = consumer.next()
    consumer.nack(frame)
    again = consumer.next()
    assert again.body == b"retry me"
    assert again.headers.get("redelivered") == "true"
    consumer.ack(again)
    consumer.close()
    producer.close()


def test_stomp_10_sends_and_receives(stomp_gateway):
    port = stomp_gateway.port("stomp")
    queue = f"/queue/{unique('v10')}"
    consumer = Client(port, "1.0")
    consumer.conn.subscribe(queue, id="s10", ack="auto")
    producer = Client(port, "1.0")
    producer.send(queue, "from 1.0", receipt="r10")
    assert consumer.next().body == b"from 1.0"
    consumer.close()
    producer.close()
