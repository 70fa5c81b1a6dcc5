"""Sample app: Flask, dependencies managed by pipenv (Pipfile + Pipfile.lock)."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from python-pipenv\n"
