// Sample asset build: writes static/dist/greeting.txt, which the Flask app serves.
const fs = require("fs");
const path = require("path");

const out = path.join(__dirname, "..", "static", "dist");
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, "greeting.txt"), "hello from python-node-assets\n");
