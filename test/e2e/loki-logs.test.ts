/** With LOKI_URL set, a service pushes its JSON logs to Loki (here a stand-in receiver), secrets redacted. */
import { describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import { startProcess } from '../helpers/processes.ts';

interface LokiPush {
  streams: { stream: Record<string, string>; values: [string, string][] }[];
}

describe('log shipping to Loki', () => {
  it('pushes the service logs with service labels and trace ids, without secrets', async () => {
    const pushes: LokiPush[] = [];
    const loki = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        if (req.url === '/loki/api/v1/push') pushes.push(JSON.parse(body.toString()) as LokiPush);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((ok) => loki.listen(0, '127.0.0.1', ok));
    const lokiUrl = `http://127.0.0.1:${(loki.address() as { port: number }).port}`;
    try {
      const llm = await startProcess('llm-proxy', { LLM_PROXY__INTERNAL_API_KEY: TEST_INTERNAL_KEY, LOKI_URL: lokiUrl });
      const traceId = 'aaaabbbbccccddddeeeeffff00001111';
      const res = await fetch(`${llm.url}/v1/models`, {
        headers: { 'x-internal-auth': TEST_INTERNAL_KEY, traceparent: `00-${traceId}-1111222233334444-01` },
      });
      expect(res.status).toBe(200);
      expect(await llm.stop()).toBe(0); // the last batch is flushed on exit
      const lines = pushes.flatMap((p) =>
        p.streams.flatMap((s) => s.values.map(([, line]) => ({ labels: s.stream, entry: JSON.parse(line) as Record<string, unknown> }))),
      );
      const request = lines.filter((l) => l.entry.trace_id === traceId);
      expect(request.map((l) => l.entry.msg)).toContain('request completed'); // one line per request
      expect(request[0]!.labels).toMatchObject({ service: 'llm-proxy', environment: 'development' });
      expect(lines.some((l) => l.entry.msg === 'llm-proxy listening')).toBe(true);
      expect(JSON.stringify(pushes)).not.toContain(TEST_INTERNAL_KEY);
    } finally {
      loki.close();
    }
  });
});
