// Writes the site into dist/: what `npm run build` of a site generator does, without the generator.
const fs = require("fs");
const path = require("path");

const out = path.join(__dirname, "dist");
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, "assets"), { recursive: true });
fs.writeFileSync(path.join(out, "index.html"), "hello from node-build-static\n");
fs.writeFileSync(path.join(out, "assets", "built.txt"), `built by node ${process.version}\n`);
console.log("wrote dist/");
