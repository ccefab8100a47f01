"""pika against mqgate: AMQP 0-9-1 as a RabbitMQ application sees it.

Every expectation here was checked against RabbitMQ 3.10 (AMQP_REFERENCE_PORT=5672), error texts
included, so an application written for RabbitMQ runs unchanged on mqgate.
"""

import datetime
import decimal
import os

import pika
import pytest
from pika import spec
from pika.exceptions import (
    AMQPConnectionError,
    ChannelClosedByBroker,
    NackError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    UnroutableError,
)

from amqp_clients import (
    Consumer,
    SelectRun,
    bodies,
    channel_error,
    connect,
    connection_error,
    exchange_exists,
    get,
    get_empty,
    idle_for,
    message_count,
    queue_exists,
    raw_publish,
    raw_rpc,
    stays_empty,
    wait_message_count,
    sync,
    wait_queue_gone,
    wait_until,
)
from conftest import unique
from mqtt_clients import Collector
from stomp_clients import Client as StompClient

CAPABILITIES = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "consumer_priorities",
    "per_consumer_qos",
    "authentication_failure_close",
]


@pytest.fixture
def port(amqp_gateway):
    return amqp_gateway.port("amqp")


@pytest.fixture
def broker(port):
    """Opens blocking connections for one test and closes the ones still open after it."""
    opened = []

    def open_connection(**kwargs):
        connection = connect(port, **kwargs)
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        if connection.is_open:
            connection.close()


@pytest.fixture
def channel(broker):
    return broker().channel()


@pytest.fixture
def confirmed(broker):
    """A confirm-mode channel: once basic_publish returns, every target queue holds the message."""
    confirm_channel = broker().channel()
    confirm_channel.confirm_delivery()
    return confirm_channel


def private_queue(channel, **arguments):
    """A server-named exclusive queue, gone when the test's connection closes."""
    return channel.queue_declare("", exclusive=True, arguments=arguments or None).method.queue


def reply(error):
    """(reply_code, reply_text) of a broker's channel.close or connection.close."""
    return error.reply_code, error.reply_text


def not_found_exchange(name):
    return f"NOT_FOUND - no exchange '{name}' in vhost '/'"


def not_found_queue(name):
    return f"NOT_FOUND - no queue '{name}' in vhost '/'"


# --- connection ----------------------------------------------------------------------------------


def test_plain_login_and_server_capabilities(broker):
    connection = broker()
    assert connection.is_open
    capabilities = connection._impl.server_capabilities
    for capability in CAPABILITIES:
        assert capabilities.get(capability) is True, capability
    properties = connection._impl.server_properties
    assert isinstance(properties["capabilities"], dict)
    for key in ("product", "version", "platform"):
        assert key in properties, key


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user"])
def test_bad_credentials_are_refused_with_403(port, who):
    user, password = ("guest", "wrong") if who == "wrong-password" else (unique("nobody"), "guest")
    # RabbitMQ advertises authentication_failure_close, so it answers a failed login with
    # connection.close 403 before closing; pika raises ProbableAuthenticationError with it.
    with pytest.raises(ProbableAuthenticationError) as raised:
        connect(port, user=user, password=password)
    text = str(raised.value)
    assert "(403)" in text
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in text


def test_unknown_vhost_is_530_not_allowed(port):
    vhost = unique("novhost")
    with pytest.raises(ProbableAccessDeniedError) as raised:
        connect(port, vhost=vhost)
    assert f"(530) 'NOT_ALLOWED - vhost {vhost} not found'" in str(raised.value)


def test_tune_proposes_rabbitmq_defaults(broker):
    proposed = []

    def heartbeat(_connection, server_value):
        proposed.append(server_value)
        return server_value

    connection = broker(heartbeat=heartbeat)
    assert proposed == [60]
    params = connection._impl.params
    assert params.heartbeat == 60
    assert params.channel_max == 2047  # pika offers 65535, the server's 2047 wins
    assert params.frame_max == 131072


def test_client_lowers_channel_max_and_frame_max(broker):
    connection = broker(channel_max=3, frame_max=8192)
    assert connection._impl.params.channel_max == 3
    assert connection._impl.params.frame_max == 8192
    channels = [connection.channel() for _ in range(3)]
    # A fourth channel breaks the negotiated limit: a connection error, as RabbitMQ does it.
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as raised:
        connection.channel(channel_number=4)
    assert raised.value.reply_code == 530
    assert raised.value.reply_text.startswith("NOT_ALLOWED - ")
    assert "channel_max" in raised.value.reply_text
    assert all(not channel.is_open for channel in channels)


def test_frame_larger_than_frame_max_is_a_501_frame_error(broker):
    connection = broker(frame_max=8192)
    channel = connection.channel()
    queue = private_queue(channel)
    connection._impl._body_max_length = 20000  # make pika send one oversized body frame
    error = connection_error(connection, channel,
                             lambda ch: ch.basic_publish("", queue, b"x" * 12000))
    assert error.reply_code == 501
    assert error.reply_text.startswith("FRAME_ERROR")


def test_negotiated_heartbeat_is_sent_by_the_server(broker):
    connection = broker(heartbeat=1)
    assert connection._impl.params.heartbeat == 1
    checker = connection._impl._heartbeat_checker
    wait_until(connection, lambda: checker._heartbeat_frames_received >= 2, timeout=5,
               what="two server heartbeats at a 1 s interval")
    assert connection.is_open


def test_server_drops_a_connection_that_stops_heartbeating(broker):
    connection = broker(heartbeat=1)
    connection._impl._heartbeat_checker.stop()  # pika goes silent; the server must notice
    try:
        wait_until(connection, lambda: connection.is_closed, timeout=15,
                   what="the server to drop the silent connection")
    except AMQPConnectionError:
        pass  # RabbitMQ just closes the socket (StreamLostError); a connection.close is fine too
    assert connection.is_closed


def test_heartbeat_zero_disables_heartbeats(broker):
    connection = broker(heartbeat=0)
    assert connection._impl.params.heartbeat == 0
    assert connection._impl._heartbeat_checker is None
    before = connection._impl.bytes_received
    idle_for(connection, 1.5)
    assert connection._impl.bytes_received == before
    assert connection.is_open


# --- exchanges -----------------------------------------------------------------------------------


def bound_queue(channel, exchange, routing_key="", arguments=None):
    queue = private_queue(channel)
    channel.queue_bind(queue, exchange, routing_key, arguments=arguments)
    return queue


def test_direct_exchange_routes_by_exact_key(confirmed):
    exchange = unique("direct")
    confirmed.exchange_declare(exchange, "direct", auto_delete=True)
    first = bound_queue(confirmed, exchange, "black")
    second = bound_queue(confirmed, exchange, "white")
    confirmed.basic_publish(exchange, "black", b"b")
    confirmed.basic_publish(exchange, "white", b"w")
    with pytest.raises(UnroutableError):
        confirmed.basic_publish(exchange, "blackish", b"x", mandatory=True)
    assert bodies(confirmed, first, 1) == [b"b"]
    assert bodies(confirmed, second, 1) == [b"w"]
    assert get_empty(confirmed, first) and get_empty(confirmed, second)


def test_fanout_exchange_ignores_the_key(confirmed):
    exchange = unique("fanout")
    confirmed.exchange_declare(exchange, "fanout", auto_delete=True)
    queues = [bound_queue(confirmed, exchange, key) for key in ("a", "b", "")]
    confirmed.basic_publish(exchange, "anything", b"all")
    for queue in queues:
        assert bodies(confirmed, queue, 1) == [b"all"]


def test_topic_exchange_star_and_hash(confirmed):
    exchange = unique("topic")
    confirmed.exchange_declare(exchange, "topic", auto_delete=True)
    star = bound_queue(confirmed, exchange, "a.*.c")
    hash_ = bound_queue(confirmed, exchange, "a.#")
    for key in ("a.b.c", "a", "a.b.b.c", "b.a.c"):
        confirmed.basic_publish(exchange, key, key.encode())
    assert bodies(confirmed, star, 1) == [b"a.b.c"]
    assert get_empty(confirmed, star)
    assert bodies(confirmed, hash_, 3) == [b"a.b.c", b"a", b"a.b.b.c"]
    assert get_empty(confirmed, hash_)


def test_headers_exchange_match_all_and_any(confirmed):
    exchange = unique("headers")
    confirmed.exchange_declare(exchange, "headers", auto_delete=True)
    every = bound_queue(confirmed, exchange,
                        arguments={"x-match": "all", "format": "pdf", "type": "report"})
    some = bound_queue(confirmed, exchange,
                       arguments={"x-match": "any", "format": "pdf", "type": "log"})
    for name, headers in (("both", {"format": "pdf", "type": "report"}), ("one", {"format": "pdf"}),
                          ("log", {"type": "log"}), ("none", {"format": "zip"})):
        confirmed.basic_publish(exchange, "", name.encode(), pika.BasicProperties(headers=headers))
    assert bodies(confirmed, every, 1) == [b"both"]
    assert get_empty(confirmed, every)
    assert bodies(confirmed, some, 3) == [b"both", b"one", b"log"]
    assert get_empty(confirmed, some)


def test_passive_declare_of_a_missing_exchange_is_404(channel):
    name = unique("missing")
    error = channel_error(channel, lambda ch: ch.exchange_declare(name, passive=True))
    assert reply(error) == (404, not_found_exchange(name))


def test_passive_declare_of_an_existing_exchange(channel):
    name = unique("exists")
    channel.exchange_declare(name, "topic", auto_delete=True)
    channel.exchange_declare(name, passive=True)
    channel.exchange_declare("amq.topic", passive=True)
    channel.exchange_declare(name, "topic", auto_delete=True)  # an equal redeclare is fine


@pytest.mark.parametrize("flag,change,text", [
    ("type", {"exchange_type": "topic"}, "received 'topic' but current is 'direct'"),
    ("durable", {"durable": True}, "received 'true' but current is 'false'"),
    ("auto_delete", {"auto_delete": True}, "received 'true' but current is 'false'"),
], ids=["type", "durable", "auto_delete"])
def test_redeclare_exchange_differently_is_406(broker, flag, change, text):
    name = unique("x")
    first = broker().channel()
    first.exchange_declare(name, "direct")
    again = dict(exchange_type="direct", durable=False, auto_delete=False)
    again.update(change)
    error = channel_error(broker().channel(), lambda ch: ch.exchange_declare(name, **again))
    assert error.reply_code == 406
    assert error.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg '{flag}' for exchange '{name}' in vhost '/': "
        + text)
    first.exchange_delete(name)


def test_amq_prefix_is_reserved(broker):
    error = channel_error(broker().channel(), lambda ch: ch.exchange_declare("amq.foo", "direct"))
    assert reply(error) == (
        403, "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'")
    error = channel_error(broker().channel(), lambda ch: ch.queue_declare("amq.foo"))
    assert reply(error) == (
        403, "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'")


def test_builtin_exchanges_cannot_be_deleted(broker):
    for name in ("amq.direct", "amq.fanout", "amq.topic", "amq.headers"):
        assert exchange_exists(broker(), name)
    error = channel_error(broker().channel(), lambda ch: ch.exchange_delete("amq.direct"))
    assert reply(error) == (
        403, "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed")
    error = channel_error(broker().channel(), lambda ch: ch.exchange_delete(""))
    assert reply(error) == (403, "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_unknown_exchange_type_is_a_503_connection_error(broker):
    connection = broker()
    channel = connection.channel()
    error = connection_error(connection, channel,
                             lambda ch: ch.exchange_declare(unique("x"), "bogus"))
    assert reply(error) == (503, "COMMAND_INVALID - unknown exchange type 'bogus'")


def test_internal_exchange_refuses_publishes_but_routes_from_exchanges(broker, confirmed):
    internal = unique("internal")
    front = unique("front")
    confirmed.exchange_declare(internal, "fanout", internal=True, auto_delete=True)
    confirmed.exchange_declare(front, "fanout", auto_delete=True)
    confirmed.exchange_bind(internal, front)
    queue = bound_queue(confirmed, internal)
    error = channel_error(broker().channel(), lambda ch: ch.basic_publish(internal, "", b"x"))
    assert reply(error) == (
        403, f"ACCESS_REFUSED - cannot publish to internal exchange '{internal}' in vhost '/'")
    confirmed.basic_publish(front, "", b"via front")
    assert bodies(confirmed, queue, 1) == [b"via front"]


def test_exchange_delete_and_if_unused(broker):
    channel = broker().channel()
    name = unique("del")
    channel.exchange_declare(name, "direct")
    queue = bound_queue(channel, name, "k")
    error = channel_error(broker().channel(), lambda ch: ch.exchange_delete(name, if_unused=True))
    assert reply(error) == (406, f"PRECONDITION_FAILED - exchange '{name}' in vhost '/' in use")
    channel.queue_unbind(queue, name, "k")
    channel.exchange_delete(name, if_unused=True)
    assert not exchange_exists(broker(), name)
    channel.exchange_delete(name)  # deleting a missing exchange is not an error in RabbitMQ


def test_exchange_to_exchange_binding_routes_and_unbinds(confirmed):
    source = unique("e2e-src")
    destination = unique("e2e-dst")
    confirmed.exchange_declare(source, "direct")
    confirmed.exchange_declare(destination, "fanout", auto_delete=True)
    confirmed.exchange_bind(destination, source, "k")
    queue = bound_queue(confirmed, destination)
    confirmed.basic_publish(source, "k", b"routed")
    with pytest.raises(UnroutableError):
        confirmed.basic_publish(source, "other", b"dropped", mandatory=True)
    assert bodies(confirmed, queue, 1) == [b"routed"]
    confirmed.exchange_unbind(destination, source, "k")
    with pytest.raises(UnroutableError):
        confirmed.basic_publish(source, "k", b"unbound", mandatory=True)
    assert get_empty(confirmed, queue)
    confirmed.exchange_delete(source)


def test_auto_delete_exchange_goes_with_its_last_binding(broker):
    channel = broker().channel()
    exchange = unique("autodel-x")
    channel.exchange_declare(exchange, "direct", auto_delete=True)
    assert exchange_exists(broker(), exchange), "never bound: it stays"
    first = bound_queue(channel, exchange, "a")
    channel.queue_bind(first, exchange, "b")
    channel.queue_unbind(first, exchange, "a")
    assert exchange_exists(broker(), exchange), "one binding is left"
    channel.queue_unbind(first, exchange, "b")
    assert not exchange_exists(broker(), exchange)


def test_alternate_exchange_takes_unroutable_messages(confirmed):
    alternate = unique("ae")
    main = unique("main")
    confirmed.exchange_declare(alternate, "fanout", auto_delete=True)
    confirmed.exchange_declare(main, "direct", auto_delete=True,
                               arguments={"alternate-exchange": alternate})
    routed = bound_queue(confirmed, main, "known")
    spare = bound_queue(confirmed, alternate)
    confirmed.basic_publish(main, "known", b"direct")
    # Routed by the alternate exchange: no basic.return, so no UnroutableError.
    confirmed.basic_publish(main, "unknown", b"spare", mandatory=True)
    assert bodies(confirmed, routed, 1) == [b"direct"]
    method, _properties, body = get(confirmed, spare, auto_ack=True)
    assert body == b"spare"
    assert method.exchange == main
    assert method.routing_key == "unknown"
    assert get_empty(confirmed, routed)


# --- queues --------------------------------------------------------------------------------------


def test_server_named_queue(channel):
    first = channel.queue_declare("", exclusive=True).method
    second = channel.queue_declare("", exclusive=True).method
    assert first.queue.startswith("amq.gen-")
    assert second.queue.startswith("amq.gen-")
    assert first.queue != second.queue
    assert (first.message_count, first.consumer_count) == (0, 0)
    again = channel.queue_declare(first.queue, passive=True).method
    assert again.queue == first.queue
    # Its name has the reserved prefix: only a passive declare may name it again.
    error = channel_error(channel, lambda ch: ch.queue_declare(first.queue, exclusive=True))
    assert reply(error) == (
        403, f"ACCESS_REFUSED - queue name '{first.queue}' contains reserved prefix 'amq.*'")


def test_passive_queue_declare_counts_and_404(broker, confirmed):
    queue = private_queue(confirmed)
    for i in range(3):
        confirmed.basic_publish("", queue, str(i).encode())
    consumer_channel = confirmed.connection.channel()
    consumer_channel.basic_qos(prefetch_count=1)
    Consumer(consumer_channel, queue).wait(1)
    declared = confirmed.queue_declare(queue, passive=True).method
    assert declared.queue == queue
    assert declared.message_count == 2  # ready messages only; one is unacked at the consumer
    assert declared.consumer_count == 1
    missing = unique("missing")
    error = channel_error(broker().channel(), lambda ch: ch.queue_declare(missing, passive=True))
    assert reply(error) == (404, not_found_queue(missing))


def test_exclusive_queue_is_locked_to_its_connection(broker):
    owner = broker()
    queue = unique("exclusive")
    owner.channel().queue_declare(queue, exclusive=True)
    other = broker()
    locked = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue "
              f"'{queue}' in vhost '/'")
    for action in (lambda ch: ch.queue_declare(queue, exclusive=True),
                   lambda ch: ch.queue_declare(queue, passive=True),
                   lambda ch: ch.basic_consume(queue, lambda *_: None),
                   lambda ch: ch.basic_get(queue),
                   lambda ch: ch.queue_delete(queue)):
        error = channel_error(other.channel(), action)
        assert error.reply_code == 405
        assert error.reply_text.startswith(locked)
    # Publishing to it from elsewhere is allowed (RabbitMQ's rule).
    publisher = other.channel()
    publisher.confirm_delivery()
    publisher.basic_publish("", queue, b"hello owner")
    assert bodies(owner.channel(), queue, 1) == [b"hello owner"]
    owner.close()
    wait_queue_gone(other, queue)


def test_auto_delete_queue_goes_with_its_last_consumer(broker):
    connection = broker()
    queue = unique("autodel")
    connection.channel().queue_declare(queue, auto_delete=True)
    first = Consumer(connection.channel(), queue)
    second = Consumer(connection.channel(), queue)
    first.cancel()
    assert queue_exists(broker(), queue), "one consumer is left"
    second.cancel()
    wait_queue_gone(broker(), queue)


def test_durable_queue_and_redeclare_flags(broker):
    channel = broker().channel()
    queue = unique("durable")
    declared = channel.queue_declare(queue, durable=True).method
    assert declared.queue == queue
    error = channel_error(broker().channel(), lambda ch: ch.queue_declare(queue, durable=False))
    assert error.reply_code == 406
    assert error.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{queue}' "
        "in vhost '/': received 'false' but current is 'true'")
    error = channel_error(broker().channel(),
                          lambda ch: ch.queue_declare(queue, durable=True, auto_delete=True))
    assert error.reply_code == 406
    assert "inequivalent arg 'auto_delete'" in error.reply_text
    assert channel.queue_delete(queue).method.message_count == 0


def test_redeclare_queue_with_other_arguments_is_406(broker):
    channel = broker().channel()
    queue = unique("args")
    channel.queue_declare(queue, exclusive=True, arguments={"x-max-length": 10})
    channel.queue_declare(queue, exclusive=True, arguments={"x-max-length": 10})  # equal: fine
    error = channel_error(channel, lambda ch: ch.queue_declare(queue, exclusive=True,
                                                                 arguments={"x-message-ttl": 1000}))
    assert error.reply_code == 406
    assert error.reply_text.startswith(
        f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{queue}' "
        "in vhost '/': ")


def test_queue_message_ttl_expires_messages(confirmed):
    queue = private_queue(confirmed, **{"x-message-ttl": 50})
    confirmed.basic_publish("", queue, b"short-lived")
    wait_until(confirmed.connection, lambda: get_empty(confirmed, queue),
               what="the message to expire")
    assert stays_empty(confirmed, queue)


def test_per_message_expiration(confirmed):
    queue = private_queue(confirmed)
    confirmed.basic_publish("", queue, b"brief", pika.BasicProperties(expiration="50"))
    wait_until(confirmed.connection, lambda: get_empty(confirmed, queue),
               what="the message to expire")
    confirmed.basic_publish("", queue, b"lasting", pika.BasicProperties(expiration="60000"))
    method, properties, body = get(confirmed, queue, auto_ack=True)
    assert body == b"lasting"
    assert properties.expiration == "60000"


def test_max_length_drops_the_head(confirmed):
    queue = private_queue(confirmed, **{"x-max-length": 2})
    for i in range(5):
        confirmed.basic_publish("", queue, str(i).encode())
    assert message_count(confirmed, queue) == 2
    assert bodies(confirmed, queue, 2) == [b"3", b"4"]


def test_max_length_bytes_drops_the_head(confirmed):
    queue = private_queue(confirmed, **{"x-max-length-bytes": 10})
    for body in (b"aaaaaa", b"bbbbbb", b"cccc"):
        confirmed.basic_publish("", queue, body)
    assert message_count(confirmed, queue) == 2
    assert bodies(confirmed, queue, 2) == [b"bbbbbb", b"cccc"]


def test_single_active_consumer_takes_turns(broker, confirmed):
    queue = unique("sac")
    confirmed.queue_declare(queue, arguments={"x-single-active-consumer": True})
    first = Consumer(broker().channel(), queue, auto_ack=True)
    second = Consumer(broker().channel(), queue, auto_ack=True)
    for i in range(3):
        confirmed.basic_publish("", queue, f"a{i}".encode())
    assert [d.body for d in first.wait(3)] == [b"a0", b"a1", b"a2"]
    assert second.nothing_more()
    first.cancel()
    confirmed.basic_publish("", queue, b"b0")
    assert second.next().body == b"b0"
    assert first.nothing_more(0.1)
    confirmed.queue_delete(queue)


def dead_letter_setup(channel):
    """A fanout dead-letter exchange with one queue bound: (exchange, queue)."""
    exchange = unique("dlx")
    channel.exchange_declare(exchange, "fanout", auto_delete=True)
    return exchange, bound_queue(channel, exchange)


def test_rejected_message_is_dead_lettered_with_x_death(confirmed):
    dlx, dead = dead_letter_setup(confirmed)
    entry = unique("entry")
    confirmed.exchange_declare(entry, "direct", auto_delete=True)
    source = unique("src")
    confirmed.queue_declare(source, exclusive=True, arguments={"x-dead-letter-exchange": dlx})
    confirmed.queue_bind(source, entry, "rk1")
    confirmed.basic_publish(entry, "rk1", b"doomed", pika.BasicProperties(
        message_id="m-1", headers={"keep": "me"}))
    method, _properties, _body = get(confirmed, source)
    confirmed.basic_reject(method.delivery_tag, requeue=False)
    method, properties, body = get(confirmed, dead, auto_ack=True)
    assert body == b"doomed"
    assert method.exchange == dlx
    assert method.routing_key == "rk1"  # the original key, as no x-dead-letter-routing-key is set
    assert properties.message_id == "m-1"
    headers = properties.headers
    assert headers["keep"] == "me"
    [death] = headers["x-death"]
    assert death["count"] == 1
    assert death["reason"] == "rejected"
    assert death["queue"] == source
    assert death["exchange"] == entry
    assert death["routing-keys"] == ["rk1"]
    assert isinstance(death["time"], datetime.datetime)
    assert headers["x-first-death-reason"] == "rejected"
    assert headers["x-first-death-queue"] == source
    assert headers["x-first-death-exchange"] == entry


def test_expired_and_overflowing_messages_are_dead_lettered(confirmed):
    dlx, dead = dead_letter_setup(confirmed)
    expiring = private_queue(confirmed, **{"x-message-ttl": 20, "x-dead-letter-exchange": dlx,
                                           "x-dead-letter-routing-key": "expired-key"})
    full = private_queue(confirmed, **{"x-max-length": 1, "x-overflow": "drop-head",
                                       "x-dead-letter-exchange": dlx})
    confirmed.basic_publish("", expiring, b"too late")
    method, properties, body = get(confirmed, dead, auto_ack=True)
    assert body == b"too late"
    assert method.routing_key == "expired-key"
    [death] = properties.headers["x-death"]
    assert (death["reason"], death["queue"], death["exchange"]) == ("expired", expiring, "")
    assert death["routing-keys"] == [expiring]
    confirmed.basic_publish("", full, b"first")
    confirmed.basic_publish("", full, b"second")
    method, properties, body = get(confirmed, dead, auto_ack=True)
    assert body == b"first"
    [death] = properties.headers["x-death"]
    assert (death["reason"], death["queue"], death["count"]) == ("maxlen", full, 1)
    assert bodies(confirmed, full, 1) == [b"second"]


def test_x_death_counts_each_queue_and_reason(channel):
    first = unique("ping")
    second = first + "-pong"
    channel.queue_declare(first, exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": second})
    channel.queue_declare(second, exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": first})
    channel.basic_publish("", first, b"ball")
    for queue in (first, second, first):
        method, _properties, _body = get(channel, queue)
        channel.basic_nack(method.delivery_tag, requeue=False)
    method, properties, _body = get(channel, second, auto_ack=True)
    deaths = properties.headers["x-death"]
    # Most recent first; one entry per (queue, reason), its count growing.
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
        (first, "rejected", 2), (second, "rejected", 1)]
    assert properties.headers["x-first-death-queue"] == first


def test_max_priority_delivers_highest_first(confirmed):
    queue = private_queue(confirmed, **{"x-max-priority": 10})
    for priority in (1, 5, None, 3, 5):
        body = f"p{priority}".encode()
        confirmed.basic_publish("", queue, body, pika.BasicProperties(priority=priority))
    assert bodies(confirmed, queue, 5) == [b"p5", b"p5", b"p3", b"p1", b"pNone"]


def test_bind_and_unbind_queue(confirmed):
    queue = private_queue(confirmed)
    confirmed.queue_bind(queue, "amq.direct", queue)
    confirmed.basic_publish("amq.direct", queue, b"bound", mandatory=True)
    assert bodies(confirmed, queue, 1) == [b"bound"]
    confirmed.queue_unbind(queue, "amq.direct", queue)
    with pytest.raises(UnroutableError):
        confirmed.basic_publish("amq.direct", queue, b"unbound", mandatory=True)
    confirmed.queue_unbind(queue, "amq.direct", "never-bound")  # RabbitMQ: not an error


def test_bind_to_missing_exchange_or_queue_is_404(broker):
    queue = private_queue(broker().channel())
    exchange = unique("nox")
    error = channel_error(broker().channel(), lambda ch: ch.queue_bind(queue, exchange, "k"))
    assert reply(error) == (404, not_found_exchange(exchange))
    missing = unique("noq")
    error = channel_error(broker().channel(), lambda ch: ch.queue_bind(missing, "amq.direct", "k"))
    assert reply(error) == (404, not_found_queue(missing))


def test_purge_reports_the_message_count(confirmed):
    queue = private_queue(confirmed)
    for i in range(3):
        confirmed.basic_publish("", queue, str(i).encode())
    assert confirmed.queue_purge(queue).method.message_count == 3
    assert get_empty(confirmed, queue)
    assert confirmed.queue_purge(queue).method.message_count == 0


def test_queue_delete_if_unused_if_empty_and_count(broker):
    channel = broker().channel()
    channel.confirm_delivery()
    queue = unique("delq")
    channel.queue_declare(queue)
    for i in range(2):
        channel.basic_publish("", queue, str(i).encode())
    consumer_channel = broker().channel()
    consumer_channel.basic_qos(prefetch_count=1)
    consumer = Consumer(consumer_channel, queue)
    consumer.wait(1)
    error = channel_error(broker().channel(), lambda ch: ch.queue_delete(queue, if_unused=True))
    assert reply(error) == (406, f"PRECONDITION_FAILED - queue '{queue}' in vhost '/' in use")
    consumer.cancel()
    consumer_channel.close()  # the unacked one goes back: two ready again
    wait_message_count(channel, queue, 2)
    error = channel_error(broker().channel(), lambda ch: ch.queue_delete(queue, if_empty=True))
    assert reply(error) == (406, f"PRECONDITION_FAILED - queue '{queue}' in vhost '/' not empty")
    assert channel.queue_delete(queue).method.message_count == 2
    assert not queue_exists(broker(), queue)
    assert channel.queue_delete(queue).method.message_count == 0  # missing: no error


# --- consuming, acknowledging --------------------------------------------------------------------


def test_prefetch_count_bounds_unacked_deliveries(confirmed):
    queue = private_queue(confirmed)
    for i in range(5):
        confirmed.basic_publish("", queue, str(i).encode())
    channel = confirmed.connection.channel()
    channel.basic_qos(prefetch_count=2)
    consumer = Consumer(channel, queue)
    assert [d.body for d in consumer.wait(2)] == [b"0", b"1"]
    assert consumer.nothing_more()
    channel.basic_ack(consumer.deliveries[0].tag)
    assert consumer.wait(3)[2].body == b"2"
    assert consumer.nothing_more()
    channel.basic_ack(consumer.deliveries[2].tag, multiple=True)
    assert [d.body for d in consumer.wait(5)[3:]] == [b"3", b"4"]


def test_prefetch_is_per_consumer_unless_global(confirmed):
    first = private_queue(confirmed)
    second = private_queue(confirmed)
    for queue in (first, second):
        for i in range(3):
            confirmed.basic_publish("", queue, str(i).encode())
    # global=false (per_consumer_qos): each new consumer on the channel gets its own limit.
    channel = confirmed.connection.channel()
    channel.basic_qos(prefetch_count=1, global_qos=False)
    consumers = [Consumer(channel, queue) for queue in (first, second)]
    for consumer in consumers:
        consumer.wait(1)
    assert all(consumer.nothing_more(0.2) for consumer in consumers)
    channel.close()  # both unacked go back
    wait_message_count(confirmed, first, 3)
    wait_message_count(confirmed, second, 3)
    # global=true: RabbitMQ shares the limit across the channel's consumers.
    channel = confirmed.connection.channel()
    channel.basic_qos(prefetch_count=1, global_qos=True)
    consumers = [Consumer(channel, queue) for queue in (first, second)]
    wait_until(channel.connection, lambda: sum(len(c.deliveries) for c in consumers) >= 1,
               what="one delivery")
    assert all(consumer.nothing_more(0.2) for consumer in consumers)
    assert sum(len(consumer.deliveries) for consumer in consumers) == 1


def test_server_generated_consumer_tag(channel):
    # pika always names its consumers, so basic.consume with an empty tag is sent by hand.
    queue = private_queue(channel)
    consume_ok = raw_rpc(channel, spec.Basic.Consume(queue=queue, consumer_tag=""),
                         [spec.Basic.ConsumeOk])
    tag = consume_ok.method.consumer_tag
    assert tag.startswith("amq.ctag-")
    got = []
    channel._impl._consumers[tag] = lambda _ch, method, _props, body: got.append((method, body))
    channel.basic_publish("", queue, b"to the server's tag")
    wait_until(channel.connection, lambda: got, what="a delivery")
    assert got[0][0].consumer_tag == tag
    assert got[0][1] == b"to the server's tag"
    channel.basic_ack(got[0][0].delivery_tag)
    cancel = raw_rpc(channel, spec.Basic.Cancel(consumer_tag=tag), [spec.Basic.CancelOk])
    assert cancel.method.consumer_tag == tag


def test_reused_consumer_tag_is_a_530_connection_error(broker):
    connection = broker()
    channel = connection.channel()
    queue = private_queue(channel)
    channel.basic_consume(queue, lambda *_: None, consumer_tag="twice")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as raised:
        raw_rpc(channel, spec.Basic.Consume(queue=queue, consumer_tag="twice"),
                [spec.Basic.ConsumeOk])
    assert raised.value.reply_code == 530
    assert raised.value.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'twice'"


def test_exclusive_consumer_excludes_others(broker):
    queue = unique("exclusive-consumer")
    owner = broker()
    owner.channel().queue_declare(queue, auto_delete=True)
    Consumer(owner.channel(), queue, exclusive=True)
    in_use = f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"
    error = channel_error(broker().channel(), lambda ch: ch.basic_consume(queue, lambda *_: None))
    assert reply(error) == (403, in_use)
    # And an exclusive consume is refused while any other consumer exists.
    second_queue = unique("shared")
    owner.channel().queue_declare(second_queue, auto_delete=True)
    Consumer(owner.channel(), second_queue)
    error = channel_error(broker().channel(), lambda ch: ch.basic_consume(
        second_queue, lambda *_: None, exclusive=True))
    assert reply(error) == (
        403, f"ACCESS_REFUSED - queue '{second_queue}' in vhost '/' in exclusive use")


def test_consumer_priority_prefers_the_higher_consumer(confirmed):
    queue = private_queue(confirmed)
    connection = confirmed.connection
    high_channel = connection.channel()
    high_channel.basic_qos(prefetch_count=2)
    low_channel = connection.channel()
    low = Consumer(low_channel, queue, arguments={"x-priority": 0})
    high = Consumer(high_channel, queue, arguments={"x-priority": 10})
    for i in range(2):
        confirmed.basic_publish("", queue, f"h{i}".encode())
    assert [d.body for d in high.wait(2)] == [b"h0", b"h1"]
    assert low.deliveries == []
    # The high consumer is out of credit now; the rest go to the low one.
    for i in range(3):
        confirmed.basic_publish("", queue, f"l{i}".encode())
    assert [d.body for d in low.wait(3)] == [b"l0", b"l1", b"l2"]
    assert len(high.deliveries) == 2


def test_cancel_stops_deliveries(confirmed):
    queue = private_queue(confirmed)
    channel = confirmed.connection.channel()
    consumer = Consumer(channel, queue, auto_ack=True)
    confirmed.basic_publish("", queue, b"one")
    assert consumer.next().body == b"one"
    consumer.cancel()
    assert channel.consumer_tags == []
    confirmed.basic_publish("", queue, b"two")
    assert consumer.nothing_more()
    assert bodies(confirmed, queue, 1) == [b"two"]


def test_server_cancels_the_consumer_when_its_queue_is_deleted(broker):
    connection = broker()
    channel = connection.channel()
    queue = unique("doomed")
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue, consumer_tag="watcher")
    broker().channel().queue_delete(queue)
    wait_until(connection, lambda: consumer.cancelled, what="basic.cancel from the server")
    cancel = consumer.cancelled[0].method
    assert isinstance(cancel, spec.Basic.Cancel)
    assert cancel.consumer_tag == "watcher"
    assert channel.is_open
    assert channel.consumer_tags == []


def test_mandatory_unroutable_is_returned_with_312(channel):
    returned = []
    channel.add_on_return_callback(
        lambda _ch, method, props, body: returned.append((method, props, body)))
    key = unique("nowhere")
    channel.basic_publish("amq.direct", key, b"come back", pika.BasicProperties(message_id="r1"),
                          mandatory=True)
    wait_until(channel.connection, lambda: returned, what="basic.return")
    method, properties, body = returned[0]
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")
    assert (method.exchange, method.routing_key) == ("amq.direct", key)
    assert properties.message_id == "r1"
    assert body == b"come back"
    # Without mandatory an unroutable message is dropped quietly: the next return is the next
    # mandatory publish's.
    channel.basic_publish("amq.direct", key, b"dropped quietly")
    channel.basic_publish("amq.direct", key, b"second", mandatory=True)
    wait_until(channel.connection, lambda: len(returned) == 2, what="a second basic.return")
    assert returned[1][2] == b"second"


def test_publish_to_a_missing_exchange_is_404(channel):
    name = unique("void")
    error = channel_error(channel, lambda ch: ch.basic_publish(name, "k", b"x"))
    assert reply(error) == (404, not_found_exchange(name))


def test_basic_get_message_count_and_get_empty(confirmed):
    queue = private_queue(confirmed)
    for i in range(3):
        confirmed.basic_publish("", queue, str(i).encode())
    method, _properties, body = get(confirmed, queue, auto_ack=True)
    assert body == b"0"
    assert method.message_count == 2
    assert (method.exchange, method.routing_key, method.redelivered) == ("", queue, False)
    counts = [get(confirmed, queue, auto_ack=True)[0].message_count for _ in range(2)]
    assert counts == [1, 0]
    assert confirmed.basic_get(queue) == (None, None, None)


def test_ack_multiple_and_requeue_of_unacked_on_channel_close(confirmed):
    queue = private_queue(confirmed)
    for i in range(3):
        confirmed.basic_publish("", queue, str(i).encode())
    channel = confirmed.connection.channel()
    tags = [get(channel, queue)[0].delivery_tag for _ in range(3)]
    assert tags == [1, 2, 3]
    channel.basic_ack(tags[1], multiple=True)
    channel.close()
    method, _properties, body = get(confirmed, queue, auto_ack=True)
    assert (body, method.redelivered) == (b"2", True)
    assert get_empty(confirmed, queue)


def test_nack_multiple_requeues_in_order_flagged_redelivered(confirmed):
    queue = private_queue(confirmed)
    for i in range(3):
        confirmed.basic_publish("", queue, str(i).encode())
    deliveries = [get(confirmed, queue) for _ in range(3)]
    assert not any(method.redelivered for method, _, _ in deliveries)
    confirmed.basic_nack(deliveries[-1][0].delivery_tag, multiple=True, requeue=True)
    again = [get(confirmed, queue, auto_ack=True) for _ in range(3)]
    assert [body for _, _, body in again] == [b"0", b"1", b"2"]
    assert all(method.redelivered for method, _, _ in again)


def test_reject_requeue_and_discard(confirmed):
    queue = private_queue(confirmed)
    confirmed.basic_publish("", queue, b"twice")
    method, _, _ = get(confirmed, queue)
    confirmed.basic_reject(method.delivery_tag, requeue=True)
    method, _, body = get(confirmed, queue)
    assert (body, method.redelivered) == (b"twice", True)
    confirmed.basic_reject(method.delivery_tag, requeue=False)
    assert stays_empty(confirmed, queue)


def test_nack_tag_zero_with_multiple_settles_everything(confirmed):
    queue = private_queue(confirmed)
    for i in range(3):
        confirmed.basic_publish("", queue, str(i).encode())
    for _ in range(3):
        get(confirmed, queue)
    confirmed.basic_nack(0, multiple=True, requeue=False)  # tag 0 + multiple: all outstanding
    assert stays_empty(confirmed, queue)
    error = channel_error(confirmed, lambda ch: ch.basic_ack(3))
    assert reply(error) == (406, "PRECONDITION_FAILED - unknown delivery tag 3")


def test_recover_redelivers_unacked_messages(broker, confirmed):
    queue = private_queue(confirmed)
    channel = confirmed.connection.channel()
    consumer = Consumer(channel, queue)
    confirmed.basic_publish("", queue, b"again")
    first = consumer.next()
    assert not first.method.redelivered
    channel.basic_recover(requeue=True)
    second = consumer.next()
    assert (second.body, second.method.redelivered) == (b"again", True)
    channel.basic_ack(second.tag)
    assert consumer.nothing_more()
    # RabbitMQ does not implement recover with requeue=false: a 540 connection error.
    connection = broker()
    other = connection.channel()
    error = connection_error(connection, other, lambda ch: ch.basic_recover(requeue=False))
    assert reply(error) == (540, "NOT_IMPLEMENTED - requeue=false")


@pytest.mark.parametrize("settle", [
    lambda ch, tag: ch.basic_ack(tag),
    lambda ch, tag: ch.basic_ack(tag, multiple=True),
    lambda ch, tag: ch.basic_nack(tag, multiple=True),
    lambda ch, tag: ch.basic_reject(tag),
], ids=["ack", "ack-multiple", "nack-multiple", "reject"])
def test_unknown_delivery_tag_is_406(channel, settle):
    error = channel_error(channel, lambda ch: settle(ch, 42))
    assert reply(error) == (406, "PRECONDITION_FAILED - unknown delivery tag 42")


def test_double_ack_is_406(confirmed):
    queue = private_queue(confirmed)
    confirmed.basic_publish("", queue, b"once")
    method, _, _ = get(confirmed, queue)

    def twice(ch):
        ch.basic_ack(method.delivery_tag)
        ch.basic_ack(method.delivery_tag)

    error = channel_error(confirmed, twice)
    assert reply(error) == (
        406, f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}")


def test_prefetch_size_is_not_implemented(broker):
    connection = broker()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=5, global_qos=True)  # a count, global or not, is fine
    error = connection_error(connection, channel, lambda ch: ch.basic_qos(prefetch_size=5))
    assert reply(error) == (540, "NOT_IMPLEMENTED - prefetch_size!=0 (5)")


def test_channel_flow_stop_is_not_implemented(broker):
    connection = broker()
    channel = connection.channel()
    assert channel.flow(True) is True
    error = connection_error(connection, channel, lambda ch: ch.flow(False))
    assert reply(error) == (540, "NOT_IMPLEMENTED - active=false")


# --- publisher confirms --------------------------------------------------------------------------


def test_confirms_acknowledge_every_publish(confirmed):
    queue = private_queue(confirmed)
    for i in range(20):
        confirmed.basic_publish("", queue, str(i).encode())  # raises unless basic.ack arrives
    assert message_count(confirmed, queue) == 20


def test_confirmed_mandatory_unroutable_raises_unroutable(confirmed):
    key = unique("nowhere")
    with pytest.raises(UnroutableError) as raised:
        confirmed.basic_publish("amq.direct", key, b"lost", mandatory=True)
    [returned] = raised.value.messages
    assert (returned.method.reply_code, returned.method.reply_text) == (312, "NO_ROUTE")
    assert returned.body == b"lost"
    confirmed.basic_publish("amq.direct", key, b"lost quietly")  # not mandatory: acked


def test_reject_publish_overflow_nacks(confirmed):
    queue = private_queue(confirmed, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    confirmed.basic_publish("", queue, b"fits")
    with pytest.raises(NackError):
        confirmed.basic_publish("", queue, b"overflows")
    assert bodies(confirmed, queue, 1) == [b"fits"]
    confirmed.basic_publish("", queue, b"fits again")


def test_reject_publish_dlx_overflow_nacks_and_dead_letters(confirmed):
    dlx, dead = dead_letter_setup(confirmed)
    queue = private_queue(confirmed, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                        "x-dead-letter-exchange": dlx})
    confirmed.basic_publish("", queue, b"fits")
    with pytest.raises(NackError):
        confirmed.basic_publish("", queue, b"refused")
    method, properties, body = get(confirmed, dead, auto_ack=True)
    assert body == b"refused"
    [death] = properties.headers["x-death"]
    assert (death["reason"], death["queue"]) == ("maxlen", queue)
    assert bodies(confirmed, queue, 1) == [b"fits"]


def test_confirm_and_tx_modes_exclude_each_other(broker):
    channel = broker().channel()
    channel.confirm_delivery()
    error = channel_error(channel, lambda ch: ch.tx_select())
    assert reply(error) == (406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode")
    channel = broker().channel()
    channel.tx_select()
    error = channel_error(channel, lambda ch: ch.confirm_delivery())
    assert reply(error) == (406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode")


# --- transactions --------------------------------------------------------------------------------


def test_tx_commit_publishes_and_rollback_discards(broker):
    reader = broker().channel()
    queue = private_queue(reader)
    channel = reader.connection.channel()
    channel.tx_select()
    channel.basic_publish("", queue, b"a")
    channel.basic_publish("", queue, b"b")
    sync(channel)
    assert get_empty(reader, queue), "uncommitted publishes are invisible"
    channel.tx_commit()
    assert bodies(reader, queue, 2) == [b"a", b"b"]
    channel.basic_publish("", queue, b"never")
    channel.tx_rollback()
    channel.tx_commit()
    assert stays_empty(reader, queue)


def test_tx_rollback_undoes_acks_and_commit_applies_them(confirmed):
    queue = private_queue(confirmed)
    confirmed.basic_publish("", queue, b"keep")
    channel = confirmed.connection.channel()
    method, _, _ = get(channel, queue)
    channel.tx_select()
    channel.basic_ack(method.delivery_tag)
    channel.tx_rollback()
    channel.close()  # the ack was rolled back: still unacked, so it returns to the queue
    method, _, body = get(confirmed, queue, auto_ack=False)
    assert (body, method.redelivered) == (b"keep", True)
    confirmed.basic_nack(method.delivery_tag, requeue=True)
    channel = confirmed.connection.channel()
    method, _, _ = get(channel, queue)
    channel.tx_select()
    channel.basic_ack(method.delivery_tag)
    channel.tx_commit()
    channel.close()
    assert stays_empty(confirmed, queue)


def test_tx_commit_without_select_is_406(broker):
    for action in (lambda ch: ch.tx_commit(), lambda ch: ch.tx_rollback()):
        error = channel_error(broker().channel(), action)
        assert reply(error) == (406, "PRECONDITION_FAILED - channel is not transactional")


# --- message properties and bodies ---------------------------------------------------------------

HEADERS = {
    "text": "plain and ünïcode",
    "empty": "",
    "bytes": b"\x00\xff raw",
    "bytes-text": b"valid utf-8, still a byte array",
    "small": 7,
    "negative": -5,
    "large": 2**40,
    "yes": True,
    "no": False,
    "decimal": decimal.Decimal("3.14"),
    "when": datetime.datetime(2024, 5, 6, 7, 8, 9),
    "nothing": None,
    "table": {"inner": "v", "n": 1, "deeper": {"list": [1, "two"]}},
    "array": [1, "a", True, None, {"k": "v"}, [2, 3]],
    "empty-array": [],
    "empty-table": {},
}


def test_every_basic_property_round_trips(confirmed):
    queue = private_queue(confirmed, **{"x-max-priority": 9})
    properties = pika.BasicProperties(
        content_type="application/json", content_encoding="gzip", headers=HEADERS, delivery_mode=2,
        priority=5, correlation_id="corr-1", reply_to="reply.q", expiration="60000",
        message_id="mid-1", timestamp=1700000000, type="order.created", user_id="guest",
        app_id="test-app")
    confirmed.basic_publish("", queue, b"{}", properties)
    _method, got, body = get(confirmed, queue, auto_ack=True)
    assert body == b"{}"
    for name in ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id",
                 "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id"):
        assert getattr(got, name) == getattr(properties, name), name
    assert got.headers == HEADERS


def test_header_field_types_survive_exactly(confirmed):
    queue = private_queue(confirmed)
    confirmed.basic_publish("", queue, b"", pika.BasicProperties(headers=HEADERS))
    _method, got, _body = get(confirmed, queue, auto_ack=True)
    for key, value in HEADERS.items():
        assert got.headers[key] == value, key
        assert isinstance(got.headers[key], type(value)), (key, type(got.headers[key]))
    assert got.headers["decimal"].as_tuple() == decimal.Decimal("3.14").as_tuple()


@pytest.mark.skipif(
    not os.environ.get("AMQP_REFERENCE_PORT"),
    reason="pika writes a negative 64-bit int as 'L' and reads 'l' as unsigned; RabbitMQ keeps "
           "the tag, mqgate (amq-protocol) reads both as signed and writes 'l' (docs/AMQP.md)")
def test_negative_64_bit_header_keeps_its_type_tag(confirmed):
    queue = private_queue(confirmed)
    confirmed.basic_publish("", queue, b"", pika.BasicProperties(headers={"n": -(2**40)}))
    _method, got, _body = get(confirmed, queue, auto_ack=True)
    assert got.headers["n"] == -(2**40)


def test_unset_properties_stay_unset(confirmed):
    queue = private_queue(confirmed)
    confirmed.basic_publish("", queue, b"bare")
    _method, got, _body = get(confirmed, queue, auto_ack=True)
    for name in ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
                 "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
                 "user_id", "app_id"):
        assert getattr(got, name) is None, name


def test_user_id_must_match_the_login(confirmed):
    queue = private_queue(confirmed)
    confirmed.basic_publish("", queue, b"me", pika.BasicProperties(user_id="guest"))
    assert get(confirmed, queue, auto_ack=True)[1].user_id == "guest"
    error = channel_error(confirmed, lambda ch: ch.basic_publish(
        "", queue, b"not me", pika.BasicProperties(user_id="bob")))
    assert reply(error) == (
        406,
        "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'")


@pytest.mark.parametrize("body", [
    b"",
    b"\x00",
    bytes(range(256)) * 4 + b"\x00\x00tail\x00",
    os.urandom(1024 * 1024),
], ids=["empty", "nul", "all-bytes", "1MiB"])
def test_bodies_arrive_byte_exact(broker, body):
    connection = broker(frame_max=8192)  # a 1 MiB body crosses 129 body frames
    channel = connection.channel()
    channel.confirm_delivery()
    queue = private_queue(channel)
    channel.basic_publish("", queue, body)
    consumer = Consumer(connection.channel(), queue, auto_ack=True)
    assert consumer.next().body == body


def test_immediate_flag_is_a_540_connection_error(broker):
    # pika's basic_publish has no `immediate` parameter, so the method is sent by hand.
    connection = broker()
    channel = connection.channel()
    queue = private_queue(channel)
    error = connection_error(connection, channel, lambda ch: raw_publish(
        ch, spec.Basic.Publish(exchange="", routing_key=queue, immediate=True), b"now"))
    assert reply(error) == (540, "NOT_IMPLEMENTED - immediate=true")


# --- SelectConnection: the callback API with self-stopping ioloops --------------------------------


def test_select_consume_and_ack_in_order(port):
    count = 5

    def on_open(run, _connection):
        def on_channel(channel):
            channel.basic_qos(prefetch_count=2, callback=lambda _f: declare(channel))

        def declare(channel):
            channel.queue_declare("", exclusive=True,
                                  callback=lambda frame: consume(channel, frame.method.queue))

        def consume(channel, queue):
            channel.basic_consume(
                queue, lambda ch, method, _props, body: on_message(ch, method, body),
                callback=lambda _frame: publish(channel, queue))

        def publish(channel, queue):
            for i in range(count):
                channel.basic_publish("", queue, str(i).encode())

        def on_message(channel, method, body):
            run.seen.setdefault("bodies", []).append(body)
            run.seen.setdefault("tags", []).append(method.delivery_tag)
            channel.basic_ack(method.delivery_tag)
            if len(run.seen["bodies"]) == count:
                run.finish()

        run.open_channel(on_channel)

    run = SelectRun(port, on_open)
    assert not run.timed_out, run.seen
    assert run.seen["bodies"] == [str(i).encode() for i in range(count)]
    assert run.seen["tags"] == list(range(1, count + 1))


def test_select_publisher_confirms_cover_every_tag(port):
    count = 10

    def on_open(run, _connection):
        confirmed = set()

        def on_channel(channel):
            channel.confirm_delivery(on_confirm, callback=lambda _f: declare(channel))

        def declare(channel):
            channel.queue_declare("", exclusive=True,
                                  callback=lambda frame: publish(channel, frame.method.queue))

        def publish(channel, queue):
            for i in range(count):
                channel.basic_publish("", queue, str(i).encode())

        def on_confirm(frame):
            method = frame.method
            run.seen.setdefault("kinds", set()).add(type(method).__name__)
            last = method.delivery_tag
            confirmed.update(range(1, last + 1) if method.multiple else [last])
            if confirmed >= set(range(1, count + 1)):
                run.seen["confirmed"] = sorted(confirmed)
                run.finish()

        run.open_channel(on_channel)

    run = SelectRun(port, on_open)
    assert not run.timed_out, run.seen
    assert run.seen["kinds"] == {"Ack"}
    assert run.seen["confirmed"] == list(range(1, count + 1))


def test_select_channel_error_reaches_the_close_callback(port):
    missing = unique("missing")

    def on_open(run, _connection):
        def on_channel(channel):
            run.seen["on_channel_close"] = on_close
            channel.exchange_declare(missing, passive=True)

        def on_close(_channel, reason):
            if isinstance(reason, ChannelClosedByBroker):
                run.open_channel(after)

        def after(channel):
            # The connection outlives the channel error: a new channel works.
            channel.exchange_declare("amq.direct", passive=True, callback=lambda _f: done())

        def done():
            run.seen["second_channel_ok"] = True
            run.finish()

        run.open_channel(on_channel)

    run = SelectRun(port, on_open)
    assert not run.timed_out, run.seen
    _number, reason = run.seen["channel_closed"][0]
    assert isinstance(reason, ChannelClosedByBroker)
    assert (reason.reply_code, reason.reply_text) == (404, not_found_exchange(missing))
    assert run.seen["second_channel_ok"]


def test_select_consumer_cancel_notification(port):
    queue = unique("select-cancel")

    def on_open(run, _connection):
        def on_channel(channel):
            channel.add_on_cancel_callback(on_cancel)
            channel.queue_declare(queue, callback=lambda _f: consume(channel))

        def consume(channel):
            channel.basic_consume(queue, lambda *_: None, consumer_tag="select-watcher",
                                  callback=lambda _f: run.open_channel(delete))

        def delete(channel):
            channel.queue_delete(queue)

        def on_cancel(frame):
            run.seen["cancel"] = frame.method
            run.finish()

        run.open_channel(on_channel)

    run = SelectRun(port, on_open)
    assert not run.timed_out, run.seen
    assert isinstance(run.seen["cancel"], spec.Basic.Cancel)
    assert run.seen["cancel"].consumer_tag == "select-watcher"


def test_select_mandatory_return(port):
    key = unique("nowhere")

    def on_open(run, _connection):
        def on_channel(channel):
            channel.add_on_return_callback(on_return)
            channel.basic_publish("amq.direct", key, b"bounce", mandatory=True)

        def on_return(_channel, method, _properties, body):
            run.seen["return"] = (method.reply_code, method.reply_text, method.routing_key, body)
            run.finish()

        run.open_channel(on_channel)

    run = SelectRun(port, on_open)
    assert not run.timed_out, run.seen
    assert run.seen["return"] == (312, "NO_ROUTE", key, b"bounce")


def test_select_bad_password_calls_the_open_error_callback(port):
    def on_open(run, _connection):
        run.seen["opened"] = True
        run.finish()

    run = SelectRun(port, on_open, password="wrong")
    assert not run.timed_out
    assert "opened" not in run.seen
    assert isinstance(run.open_error, ProbableAuthenticationError)
    assert "ACCESS_REFUSED" in str(run.open_error)


def test_select_deadline_stops_a_stalled_run(port):
    # The harness itself: a scenario that never finishes is ended by the call_later deadline.
    def on_open(run, _connection):
        run.seen["opened"] = True

    run = SelectRun(port, on_open, timeout=0.5)
    assert run.seen["opened"]
    assert run.timed_out


# --- across protocols (one gateway with MQTT, STOMP and AMQP listeners) ---------------------------


def listener_port(gateway, name):
    """The port of `name`, or a skip when a reference broker was given no such listener."""
    if name not in gateway.addresses:
        pytest.skip(f"no {name} listener "
                    f"(set {name.upper()}_REFERENCE_PORT with AMQP_REFERENCE_PORT)")
    return gateway.port(name)


def test_amqp_publish_reaches_a_stomp_topic_subscriber(all_protocols_gateway):
    stomp_port = listener_port(all_protocols_gateway, "stomp")
    connection = connect(listener_port(all_protocols_gateway, "amqp"))
    key = unique("cities") + ".london"
    subscriber = StompClient(stomp_port)
    subscriber.subscribe(f"/topic/{key}", "s1")
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("amq.topic", key, b"hello\x00stomp", pika.BasicProperties(
        content_type="text/plain", correlation_id="c-1", message_id="m-1", reply_to="replies",
        delivery_mode=2, priority=3, app_id="app", type="greeting", timestamp=1700000000,
        expiration="60000", headers={"colour": "blue", "count": 7}))
    frame = subscriber.next()
    assert frame.body == b"hello\x00stomp"
    headers = frame.headers
    assert headers["destination"] == f"/topic/{key}"
    expected = {
        "content-type": "text/plain", "correlation-id": "c-1", "amqp-message-id": "m-1",
        "reply-to": "/reply-queue/replies", "persistent": "true", "priority": "3", "app-id": "app",
        "type": "greeting", "timestamp": "1700000000", "expiration": "60000", "colour": "blue",
        "count": "7",
    }
    for name, value in expected.items():
        assert headers.get(name) == value, name
    subscriber.close()
    connection.close()


def test_stomp_send_to_a_queue_reaches_amqp(all_protocols_gateway):
    stomp_port = listener_port(all_protocols_gateway, "stomp")
    connection = connect(listener_port(all_protocols_gateway, "amqp"))
    queue = unique("from-stomp")
    sender = StompClient(stomp_port)
    sender.send(f"/queue/{queue}", b"from stomp\x00", headers={
        "colour": "red", "content-type": "application/octet-stream", "persistent": "true",
        "correlation-id": "c-2", "priority": "4", "amqp-message-id": "m-2", "app-id": "sapp",
        "type": "kind"}, receipt="r1")
    channel = connection.channel()
    declared = channel.queue_declare(queue, passive=True).method  # /queue/ declared it, durable
    assert declared.queue == queue
    method, properties, body = get(channel, queue, auto_ack=True)
    assert body == b"from stomp\x00"
    assert (method.exchange, method.routing_key) == ("", queue)
    assert properties.content_type == "application/octet-stream"
    assert properties.delivery_mode == 2
    assert properties.correlation_id == "c-2"
    assert properties.priority == 4
    assert properties.message_id == "m-2"
    assert properties.app_id == "sapp"
    assert properties.type == "kind"
    assert properties.headers["colour"] == "red"
    channel.queue_delete(queue)
    sender.close()
    connection.close()


def test_amqp_publish_on_amq_topic_reaches_mqtt(all_protocols_gateway):
    mqtt_port = listener_port(all_protocols_gateway, "mqtt")
    connection = connect(listener_port(all_protocols_gateway, "amqp"))
    base = unique("sensors")
    subscriber = Collector(mqtt_port, unique("sub"))
    subscriber.subscribe(f"{base}/+/temp", 1)
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("amq.topic", f"{base}.kitchen.temp", b"21.5")
    message = subscriber.next()
    assert message.topic == f"{base}/kitchen/temp"
    assert message.payload == b"21.5"
    subscriber.close()
    connection.close()


def test_mqtt_publish_reaches_an_amqp_queue_bound_to_amq_topic(all_protocols_gateway):
    mqtt_port = listener_port(all_protocols_gateway, "mqtt")
    connection = connect(listener_port(all_protocols_gateway, "amqp"))
    base = unique("meters")
    channel = connection.channel()
    queue = private_queue(channel)
    channel.queue_bind(queue, "amq.topic", f"{base}.#")
    publisher = Collector(mqtt_port, unique("pub"))
    publisher.publish(f"{base}/hall/power", b"\x00\x01", qos=1)
    method, properties, body = get(channel, queue, auto_ack=True)
    assert body == b"\x00\x01"
    assert (method.exchange, method.routing_key) == ("amq.topic", f"{base}.hall.power")
    assert properties.delivery_mode == 2  # QoS 1 is persistent
    assert properties.headers["x-mqtt-publish-qos"] == 1
    publisher.close()
    connection.close()
