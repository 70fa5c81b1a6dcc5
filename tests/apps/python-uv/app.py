"""Sample app: Flask, dependencies locked by uv."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from python-uv\n"
