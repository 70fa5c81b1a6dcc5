"""Sample Procfile-only app: no requirements file; the Procfile runs this with python."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from greeting import GREETING


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = GREETING.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Hello).serve_forever()
