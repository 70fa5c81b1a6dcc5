// Sample app: started as `node src/app.js` (package.json main), listens on $PORT.
const http = require("http");

const port = Number(process.env.PORT || 5000);
const server = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end("hello from node-main\n");
});
server.listen(port, "0.0.0.0", () => console.log(`listening on ${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
