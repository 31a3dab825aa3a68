/**
 * A telemetry sink for `npm run bench:telemetry`, run as its own process: accepts OTLP/HTTP trace
 * exports (`POST /v1/traces`, JSON or protobuf) and Loki pushes (`POST /loki/api/v1/push`), and
 * discards them, counting requests, bytes and (for OTLP JSON) spans. `GET /stats` answers the counts.
 *
 *   PORT=4318 node scripts/bench/telemetry-sink.ts
 */
import { createServer } from 'node:http';

const stats = { traces: { requests: 0, bytes: 0, spans: 0 }, loki: { requests: 0, bytes: 0 }, other: { requests: 0, bytes: 0 } };
const SPAN_ID = Buffer.from('"spanId"');

const server = createServer((req, res) => {
  const url = req.url ?? '';
  if (req.method === 'GET' && (url === '/stats' || url === '/health')) {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
    return;
  }
  const kind = url.startsWith('/v1/traces') ? 'traces' : url.startsWith('/loki/') ? 'loki' : 'other';
  let bytes = 0;
  let spans = 0;
  let tail: Buffer = Buffer.alloc(0);
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (kind !== 'traces') return;
    // spans counted by their "spanId" key (parentSpanId is spelled differently), across chunk edges
    const buf = tail.length ? Buffer.concat([tail, chunk]) : chunk;
    for (let i = buf.indexOf(SPAN_ID); i >= 0; i = buf.indexOf(SPAN_ID, i + SPAN_ID.length)) spans++;
    tail = buf.subarray(Math.max(0, buf.length - SPAN_ID.length + 1));
  });
  req.on('end', () => {
    const s = stats[kind];
    s.requests++;
    s.bytes += bytes;
    if (kind === 'traces') stats.traces.spans += spans;
    if (kind === 'loki') res.writeHead(204).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
server.keepAliveTimeout = 30_000;
server.listen(Number(process.env.PORT || 4318), '127.0.0.1');
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => server.close(() => process.exit(0)));
