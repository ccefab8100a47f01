"""Small helpers over paho-mqtt 2.x: connect and wait, collect messages with bounded waits."""

import queue
import threading

import paho.mqtt.client as mqtt

WAIT = 10.0


class Collector:
    """A connected paho client whose received messages land in a queue."""

    def __init__(self, port, client_id, protocol=mqtt.MQTTv311, clean=True, username="guest",
                 password="guest", will=None, properties=None):
        self.messages: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.reason = None
        self.session_present = None
        kwargs = {"client_id": client_id, "protocol": protocol}
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = clean
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(**will)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        connect_kwargs = {"keepalive": 30}
        if protocol == mqtt.MQTTv5:
            connect_kwargs["clean_start"] = clean
            if properties is not None:
                connect_kwargs["properties"] = properties
        self.client.connect("127.0.0.1", port, **connect_kwargs)
        self.client.loop_start()
        if not self.connected.wait(WAIT):
            raise TimeoutError("no CONNACK")

    def _on_connect(self, _client, _userdata, flags, reason, _properties):
        self.reason = reason
        self.session_present = flags.session_present
        self.connected.set()

    def subscribe(self, topic, qos=0, **kwargs):
        self.subscribed.clear()
        self.client.subscribe(topic, qos, **kwargs)
        if not self.subscribed.wait(WAIT):
            raise TimeoutError(f"no SUBACK for {topic}")

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos > 0:
            info.wait_for_publish(WAIT)
            assert info.is_published(), f"publish to {topic} not acknowledged"
        return info

    def next(self, timeout=WAIT) -> "mqtt.MQTTMessage":
        return self.messages.get(timeout=timeout)

    def nothing_more(self, timeout=0.5) -> bool:
        try:
            self.messages.get(timeout=timeout)
        except queue.Empty:
            return True
        return False

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self):
        """Abruptly closes the socket: the gateway sees an abnormal close (the will fires)."""
        sock = self.client.socket()
        if sock is not None:
            sock.close()
        self.client.loop_stop()
