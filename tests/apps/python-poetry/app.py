"""Sample app: Flask, dependencies managed by poetry (no lock: resolved at build time)."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from python-poetry\n"
