// Renders README.md ("hello from node-build-marked") into build/index.html with marked: the site is build/ (no
// framework names it, so the buildpack looks for dist/, then build/, then out/).
const fs = require("fs");
const path = require("path");
const { marked } = require("marked");

const out = path.join(__dirname, "build");
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out);
const html = marked.parse(fs.readFileSync(path.join(__dirname, "README.md"), "utf8"));
fs.writeFileSync(path.join(out, "index.html"), html);
console.log("wrote build/index.html");
