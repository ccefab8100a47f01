"""Small helpers over pika 1.3: blocking and select connections, broker errors, bounded waits.

Every wait here ends by itself: `process_data_events(time_limit=...)` inside a deadline loop,
`basic_get` polled until a deadline, and select ioloops that stop themselves with `call_later`.
"""

import time

import pika
from pika import spec
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

HOST = "127.0.0.1"
WAIT = 10.0
POLL = 0.02


def parameters(port, user="guest", password="guest", vhost="/", **kwargs):
    """Connection parameters for loopback; one attempt, bounded socket waits."""
    kwargs.setdefault("connection_attempts", 1)
    kwargs.setdefault("socket_timeout", WAIT)
    kwargs.setdefault("stack_timeout", WAIT)
    return pika.ConnectionParameters(HOST, port, vhost, pika.PlainCredentials(user, password),
                                     **kwargs)


def connect(port, **kwargs) -> pika.BlockingConnection:
    return pika.BlockingConnection(parameters(port, **kwargs))


def wait_until(connection, predicate, timeout=WAIT, what="the condition"):
    """Processes I/O until `predicate()` holds; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        connection.process_data_events(time_limit=min(POLL * 5, remaining))


def idle_for(connection, seconds):
    """Processes I/O (heartbeats, deliveries) for `seconds`: a bounded negative check's wait."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        connection.process_data_events(time_limit=min(POLL * 5, remaining))


def get(channel, queue, timeout=WAIT, auto_ack=False):
    """basic.get polled until a message arrives: (method, properties, body)."""
    deadline = time.monotonic() + timeout
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return method, properties, body
        if time.monotonic() >= deadline:
            raise AssertionError(f"no message on {queue} within {timeout}s")
        channel.connection.process_data_events(time_limit=POLL)


def get_empty(channel, queue) -> bool:
    """True when basic.get answers get-empty right now."""
    method, _properties, _body = channel.basic_get(queue, auto_ack=False)
    if method is not None:
        channel.basic_nack(method.delivery_tag, requeue=True)
        return False
    return True


def stays_empty(channel, queue, timeout=0.3) -> bool:
    """True when the queue offers nothing for `timeout` seconds (a bounded negative check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not get_empty(channel, queue):
            return False
        channel.connection.process_data_events(time_limit=POLL * 2)
    return True


def bodies(channel, queue, count, timeout=WAIT, auto_ack=True):
    return [get(channel, queue, timeout, auto_ack)[2] for _ in range(count)]


def sync(channel):
    """One round trip on the channel: everything sent before it has been processed."""
    channel.basic_qos(prefetch_count=0)


def channel_error(channel, action) -> ChannelClosedByBroker:
    """Runs `action(channel)` and returns the channel.close the broker answers with.

    Asynchronous methods (publish, ack) get no reply, so a synchronous round trip follows: the
    broker closes the channel before it would answer that.
    """
    try:
        action(channel)
        sync(channel)
    except ChannelClosedByBroker as error:
        assert not channel.is_open
        return error
    raise AssertionError("the broker did not close the channel")


def connection_error(connection, channel, action) -> ConnectionClosedByBroker:
    """Runs `action(channel)` and returns the connection.close the broker answers with."""
    try:
        action(channel)
        sync(channel)
    except ConnectionClosedByBroker as error:
        assert connection.is_closed
        return error
    raise AssertionError("the broker did not close the connection")


def queue_exists(connection, name) -> bool:
    """A passive queue.declare on a fresh channel: False on 404 (which closes that channel)."""
    channel = connection.channel()
    try:
        channel.queue_declare(name, passive=True)
    except ChannelClosedByBroker as error:
        assert error.reply_code == 404, error
        return False
    channel.close()
    return True


def exchange_exists(connection, name) -> bool:
    channel = connection.channel()
    try:
        channel.exchange_declare(name, passive=True)
    except ChannelClosedByBroker as error:
        assert error.reply_code == 404, error
        return False
    channel.close()
    return True


def wait_queue_gone(connection, name, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while queue_exists(connection, name):
        if time.monotonic() >= deadline:
            raise AssertionError(f"queue {name} still exists after {timeout}s")
        connection.process_data_events(time_limit=POLL * 5)


def message_count(channel, queue) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


def wait_message_count(channel, queue, expected, timeout=WAIT):
    """Polls queue.declare-ok's message_count until it is `expected`."""
    deadline = time.monotonic() + timeout
    while (count := message_count(channel, queue)) != expected:
        if time.monotonic() >= deadline:
            raise AssertionError(f"{queue} holds {count} messages, expected {expected}")
        channel.connection.process_data_events(time_limit=POLL * 5)


class Delivery:
    def __init__(self, method, properties, body):
        self.method = method
        self.properties = properties
        self.body = body

    @property
    def tag(self):
        return self.method.delivery_tag


class Consumer:
    """A basic.consume on a blocking channel whose deliveries land in a list."""

    def __init__(self, channel, queue, auto_ack=False, exclusive=False, arguments=None,
                 consumer_tag=None):
        self.channel = channel
        self.deliveries: list[Delivery] = []
        self.cancelled = []
        self.taken = 0
        channel.add_on_cancel_callback(self.cancelled.append)
        self.tag = channel.basic_consume(queue, self._on_message, auto_ack=auto_ack,
                                         exclusive=exclusive, arguments=arguments,
                                         consumer_tag=consumer_tag)

    def _on_message(self, _channel, method, properties, body):
        self.deliveries.append(Delivery(method, properties, body))

    def wait(self, count, timeout=WAIT):
        """Waits until `count` deliveries arrived in total and returns all of them."""
        wait_until(self.channel.connection, lambda: len(self.deliveries) >= count, timeout,
                   f"{count} deliveries (got {len(self.deliveries)})")
        return self.deliveries

    def next(self, timeout=WAIT) -> Delivery:
        self.wait(self.taken + 1, timeout)
        self.taken += 1
        return self.deliveries[self.taken - 1]

    def nothing_more(self, timeout=0.3) -> bool:
        before = len(self.deliveries)
        idle_for(self.channel.connection, timeout)
        return len(self.deliveries) == before

    def cancel(self):
        self.channel.basic_cancel(self.tag)


class SelectRun:
    """A pika SelectConnection driven by callbacks, with an ioloop that stops itself.

    `on_open(run, connection)` starts the scenario; callbacks record what they saw in
    `run.seen` and call `run.finish()` when done. A `call_later` deadline ends the loop if the
    scenario stalls, and `run.timed_out` says so.
    """

    def __init__(self, port, on_open, timeout=WAIT, **kwargs):
        self.seen: dict = {}
        self.timed_out = False
        self.open_error = None
        self.close_reason = None
        self._on_open = on_open
        self.connection = pika.SelectConnection(
            parameters(port, **kwargs),
            on_open_callback=self._opened,
            on_open_error_callback=self._open_failed,
            on_close_callback=self._closed,
        )
        self._deadline = self.connection.ioloop.call_later(timeout, self._expired)
        self.connection.ioloop.start()
        self.connection.ioloop.remove_timeout(self._deadline)

    def _opened(self, connection):
        self._on_open(self, connection)

    def _open_failed(self, _connection, error):
        self.open_error = error
        self.connection.ioloop.stop()

    def _closed(self, _connection, reason):
        self.close_reason = reason
        self.connection.ioloop.stop()

    def _expired(self):
        self.timed_out = True
        self.finish()

    def finish(self):
        """Closes the connection (its close callback stops the ioloop), or stops the ioloop."""
        if self.connection.is_open:
            self.connection.close()
        else:  # still opening, already closing or closed: nothing more to wait for
            self.connection.ioloop.stop()

    def open_channel(self, then):
        """Opens a channel and calls `then(channel)`; every close of it is recorded in `seen`."""

        def closed(channel, reason):
            self.seen.setdefault("channel_closed", []).append((channel.channel_number, reason))
            on_close = self.seen.get("on_channel_close")
            if on_close:
                on_close(channel, reason)

        def opened(channel):
            channel.add_on_close_callback(closed)
            then(channel)

        self.connection.channel(on_open_callback=opened)


def raw_rpc(channel, method, replies, timeout=WAIT):
    """Sends a synchronous method pika's API cannot express; returns the reply frame."""
    got = []
    channel._impl._rpc(method, got.append, replies)  # pylint: disable=protected-access
    wait_until(channel.connection, lambda: bool(got) or channel.is_closed, timeout,
               f"a reply to {method.NAME}")
    if not got:
        raise channel._closing_reason  # pylint: disable=protected-access
    return got[0]


def raw_publish(channel, method: spec.Basic.Publish, body=b"", properties=None):
    """Sends basic.publish with flags pika's basic_publish has no parameter for (immediate)."""
    channel._impl._send_method(  # pylint: disable=protected-access
        method, (properties or spec.BasicProperties(), body))
