// Benchmark 8's receiver: answers every POST 204 at once and counts them.
// node receiver.mjs PORT   (GET /count answers the number received)
import http from "node:http";

let received = 0;
const server = http.createServer((req, res) => {
  if (req.method === "GET") {
    res.end(String(received));
    return;
  }
  req.resume();
  req.on("end", () => {
    received += 1;
    res.writeHead(204).end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2]), "127.0.0.1");
