// The slow single-threaded app of the benchmark: each request burns WORK_MS of CPU synchronously,
// so it serves exactly one request at a time and is the bottleneck. Env: PORT, WORK_MS (default 2).
import { createServer } from 'node:http';

const work = Number(process.env.WORK_MS ?? 2);
const body = 'done\n';
createServer((req, res) => {
  const end = performance.now() + work;
  while (performance.now() < end);
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }).end(body);
}).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
