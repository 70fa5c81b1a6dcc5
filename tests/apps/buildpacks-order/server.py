"""Sample .buildpacks app: node builds public/greeting.txt, python (the last buildpack) serves it on $PORT."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GREETING = Path(__file__).parent / "public" / "greeting.txt"


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = GREETING.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Hello).serve_forever()
