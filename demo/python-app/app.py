"""The demo app install.sh deploys with `git push`: Flask behind gunicorn, listening on $PORT."""

import os
import socket

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    release = os.environ.get("PAAS_RELEASE", "?")
    commit = os.environ.get("PAAS_COMMIT", "")[:12]
    greeting = os.environ.get("GREETING", "Hello from paas!")  # try: paas config:set demo GREETING=Hi
    return f"{greeting} {os.environ.get('PAAS_APP', 'app')} {release} (commit {commit}) on {socket.gethostname()}\n"


@app.get("/health")
def health():
    return "ok\n"
