"""Sample app: Flask in hello.py; gunicorn is not a dependency (the image adds it)."""

import os

from flask import Flask

application = Flask(__name__)


@application.get("/")
def index():
    return "hello from flask\n"


if __name__ == "__main__":
    application.run(host="0.0.0.0", port=int(os.environ.get("PORT", "5000")))
