"""Sample app for the zero-downtime test and bench/routing.py: the standard library's HTTP/1.1 server on $PORT.

Every answer's first line is `release MARKER` (RELEASE_MARKER from the env, else RELEASE below: a push changes
that line, a config:set the env), so a client can tell which release served it.

  GET /          release line only (keep-alive: HTTP/1.1 with Content-Length)
  GET /sleep?s=N answers after N seconds
  POST /echo     the request body's length
  GET /ws        websocket upgrade; the connection then stays open (frames from the client are read and ignored)

SIGTERM is a graceful shutdown: stop accepting, close idle keep-alive connections, let requests in flight finish
(answered with `Connection: close`), send websockets a close frame, then exit.
"""

import base64
import hashlib
import os
import select
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

RELEASE = "r0"
MARKER = os.environ.get("RELEASE_MARKER") or RELEASE
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"  # RFC 6455, section 1.3

STOPPING = threading.Event()
HANDLERS = set()  # every open connection's handler, to close the idle ones at shutdown
HANDLERS_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, which the load test relies on
    disable_nagle_algorithm = True  # headers and body are two writes: without this, the body waits for an ACK
    busy = False  # between reading a request line and finishing its answer

    def setup(self):
        super().setup()
        with HANDLERS_LOCK:
            HANDLERS.add(self)

    def finish(self):
        with HANDLERS_LOCK:
            HANDLERS.discard(self)
        super().finish()

    def parse_request(self):
        self.busy = True  # a request line was read: this connection is not idle any more
        return super().parse_request()

    def handle_one_request(self):
        try:
            super().handle_one_request()
        finally:
            self.busy = False

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # one line per request would be most of the app's work under load

    def reply(self, text: str, status: int = 200) -> None:
        body = f"release {MARKER}\n{text}".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", socket.gethostname())  # which container or Swarm task answered
        if STOPPING.is_set():  # shutting down: this answer is the connection's last
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            self.reply("")
        elif url.path == "/sleep":
            seconds = float(parse_qs(url.query).get("s", ["1"])[0])
            print(f"sleeping {seconds:g}s", flush=True)  # tests wait for this line: the request is in flight
            time.sleep(seconds)  # a shutdown meanwhile does not cut it short: the request is in flight
            self.reply(f"slept {seconds:g}\n")
        elif url.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self.websocket()
        else:
            self.reply("not found\n", 404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if urlsplit(self.path).path == "/echo":
            self.reply(f"{len(body)}\n")
        else:
            self.reply("not found\n", 404)

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True  # after the websocket, the connection is done
        sock = self.connection
        while not STOPPING.is_set():
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable and not sock.recv(4096):  # the client went away
                return
        # going away (1001): the client sees a clean close, then its own close frame (or EOF) ends it
        sock.sendall(b"\x88\x02" + (1001).to_bytes(2, "big"))
        select.select([sock], [], [], 2.0)


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for requests in flight
    request_queue_size = 128


def close_idle_connections() -> None:
    """Idle keep-alive connections end now (their handler's read returns EOF); busy ones finish their answer."""
    with HANDLERS_LOCK:
        idle = [h for h in HANDLERS if not h.busy]
    for handler in idle:
        try:
            handler.connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass


def main() -> None:
    port = int(os.environ.get("PORT", "5000"))
    server = Server(("0.0.0.0", port), Handler)

    def on_sigterm(_signum, _frame):
        STOPPING.set()
        # shutdown() waits for serve_forever(), which runs in this (the main) thread: ask from another one
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"zerodowntime release {MARKER} listening on port {port}", flush=True)
    server.serve_forever()
    server.socket.close()  # no new connections from here on
    close_idle_connections()
    server.server_close()  # joins the handler threads: requests in flight finish first
    print(f"zerodowntime release {MARKER} stopped", flush=True)


if __name__ == "__main__":
    main()
