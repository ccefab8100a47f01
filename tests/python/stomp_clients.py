"""Small helpers over stomp.py: connect with a version, collect frames with bounded waits."""

import queue
import threading

import stomp

WAIT = 10.0


class Listener(stomp.ConnectionListener):
    """Collects MESSAGE, RECEIPT and ERROR frames into queues."""

    def __init__(self):
        self.messages: "queue.Queue[stomp.utils.Frame]" = queue.Queue()
        self.receipts: "queue.Queue[str]" = queue.Queue()
        self.errors: "queue.Queue[stomp.utils.Frame]" = queue.Queue()
        self.disconnected = threading.Event()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self.errors.put(frame)

    def on_disconnected(self):
        self.disconnected.set()


CONNECTIONS = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}


class Client:
    """A connected stomp.py client of one protocol version."""

    def __init__(self, port, version="1.2", login="guest", passcode="guest", heartbeats=(0, 0)):
        kwargs = {"host_and_ports": [("127.0.0.1", port)], "auto_decode": False}
        if version != "1.0":
            kwargs["heartbeats"] = heartbeats
            # The `host` header names the vhost (RabbitMQ's rule); stomp.py would send the
            # host name otherwise.
            kwargs["vhost"] = "/"
        self.version = version
        self.conn = CONNECTIONS[version](**kwargs)
        self.listener = Listener()
        self.conn.set_listener("collector", self.listener)
        self.conn.connect(login, passcode, wait=True)

    def subscribe(self, destination, sub_id, ack="auto", headers=None):
        receipt = f"sub-{sub_id}"
        self.conn.subscribe(destination, id=sub_id, ack=ack, headers=headers or {}, receipt=receipt)
        self.wait_receipt(receipt)

    def send(self, destination, body, headers=None, receipt=None, **kwargs):
        self.conn.send(destination, body, headers=headers or {}, receipt=receipt, **kwargs)
        if receipt:
            self.wait_receipt(receipt)

    def wait_receipt(self, receipt):
        while True:
            got = self.listener.receipts.get(timeout=WAIT)
            if got == receipt:
                return

    def next(self, timeout=WAIT):
        return self.listener.messages.get(timeout=timeout)

    def nothing_more(self, timeout=0.5):
        try:
            self.listener.messages.get(timeout=timeout)
        except queue.Empty:
            return True
        return False

    def ack(self, frame):
        if self.version == "1.2":
            self.conn.ack(frame.headers["ack"])
        else:
            self.conn.ack(frame.headers["message-id"], frame.headers["subscription"])

    def nack(self, frame, **kwargs):
        if self.version == "1.2":
            self.conn.nack(frame.headers["ack"], **kwargs)
        else:
            self.conn.nack(frame.headers["message-id"], frame.headers["subscription"], **kwargs)

    def close(self):
        if self.conn.is_connected():
            self.conn.disconnect()
