import { createServer, request, type Server } from 'node:http';

/**
 * HTTP backends for routing tests: each answers `NAME PATH` (the path it was asked for, after
 * any prefix the proxy stripped) on 127.0.0.1:port. Only servers started here are closed.
 */
export class NamedBackends {
  private readonly servers: Server[] = [];

  async start(named: Record<string, number>): Promise<void> {
    for (const [name, port] of Object.entries(named)) {
      const srv = createServer((req, res) => {
        res.setHeader('content-type', 'text/plain');
        res.end(`${name} ${req.url}`);
      });
      await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
      this.servers.push(srv);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }
}

export interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One GET to 127.0.0.1:port with this Host header (a new connection each time). */
export function getWithHost(port: number, host: string, path: string, timeoutMs = 3000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host, connection: 'close' }, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim(), headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${host}${path}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}
