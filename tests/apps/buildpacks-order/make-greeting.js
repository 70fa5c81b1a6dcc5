// Writes public/greeting.txt during the build (the node buildpack named first in .buildpacks).
const fs = require("fs");

fs.mkdirSync("public", { recursive: true });
fs.writeFileSync("public/greeting.txt", "hello from buildpacks-order\n");
