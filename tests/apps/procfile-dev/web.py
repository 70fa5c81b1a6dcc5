"""Sample web process: says hello on $PORT; /predeploy answers what app.json's predeploy left in the image."""

import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

BODY = b"hello from procfile-dev\n"


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        marker = Path("predeploy.test")
        body = BODY if self.path != "/predeploy" else (marker.read_bytes() if marker.exists() else b"missing\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "5000"))), Hello).serve_forever()
