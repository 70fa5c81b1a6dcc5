"""Sample app: Flask, dependencies managed by pdm (locked in pdm.lock)."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from python-pdm\n"
