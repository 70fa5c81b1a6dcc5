"""Sample app: Flask, dependencies in requirements.txt (served by gunicorn)."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from python-pip\n"
