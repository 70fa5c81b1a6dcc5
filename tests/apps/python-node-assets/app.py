"""Sample python + node app: Flask serves what package.json's build script wrote into static/dist/."""

from pathlib import Path

from flask import Flask

app = Flask(__name__)
BUILT = Path(__file__).parent / "static" / "dist" / "greeting.txt"


@app.get("/")
def index():
    return BUILT.read_text()
