"""paasd's HTTP listener: the Flask app under waitress (a production WSGI server) in a background thread, on the
loopback address by default (`api.listen`, `api.port`; nginx publishes it at paas.DOMAIN)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("paas.web")
TRUSTED_PROXY, TRUSTED_PROXY_V6 = "127.0.0.1", "::1"  # nginx (nginx/dashboard.conf.j2) connects from loopback
TRUSTED_HEADERS = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port"}


class ApiServer:
    def __init__(self, ctx_factory: Callable[[], Context], listen: str = "127.0.0.1", port: int = 2280,
                 threads: int = 16):  # each live log stream holds one while it is open
        self.ctx_factory = ctx_factory
        self.listen = listen
        self.port = port
        self.threads = threads
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (port 0: any free port, see .port) and serve in a thread."""
        from waitress import create_server

        from . import create_app

        # channel_request_lookahead: waitress keeps reading the socket while a view runs, so a log stream sees
        # its client go (waitress.client_disconnected)
        # nginx publishes this at paas.DOMAIN from loopback: its X-Forwarded-* (client address, https, host) count
        # from there only, so sessions get Secure cookies over HTTPS; anyone else's are dropped
        self._server = create_server(create_app(self.ctx_factory), host=self.listen, port=self.port,
                                     threads=self.threads, ident="paasd", clear_untrusted_proxy_headers=True,
                                     trusted_proxy=TRUSTED_PROXY_V6 if ":" in self.listen else TRUSTED_PROXY,
                                     trusted_proxy_count=1, trusted_proxy_headers=TRUSTED_HEADERS,
                                     channel_request_lookahead=4)
        # what a view yields goes out at once (each event of a log stream): waitress otherwise holds writes below
        # send_bytes (18 kB) while the view runs. Set on the shared adjustments: passing send_bytes warns that
        # the setting is deprecated (tests/unit/test_web_api_routes.py checks the latency through waitress)
        self._server.adj.send_bytes = 1
        self.port = int(self._server.getsockname()[1])
        self._thread = threading.Thread(target=self._server.run, name="paas-api", daemon=True)
        self._thread.start()
        log.info("HTTP API on %s:%d", self.listen, self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        from waitress import wasyncore

        self._server.task_dispatcher.shutdown()
        wasyncore.close_all(self._server._map)  # the loop ends once its map is empty
        if self._thread is not None:
            self._thread.join(10)
        self._server = None
