"""The demo app install.sh deploys with `git push`: Flask behind gunicorn, listening on $PORT."""

import os
import socket

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    release = os.environ.get("PAAS_RELEASE", "?")
    commit = os.environ.get("PAAS_COMMIT", "")[:12]
    return f"Hello from paas! {os.environ.get('PAAS_APP', 'app')} {release} (commit {commit}) on {socket.gethostname()}\n"


@app.get("/health")
def health():
    return "ok\n"
