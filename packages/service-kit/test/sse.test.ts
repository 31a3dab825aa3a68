import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createService, type Service } from '../src/service.ts';
import { parseSse, sseRuns, startSse, type SseEvent, type SseWriter } from '../src/sse.ts';
import { silentLogger } from '@codelab/service-kit/testing';
import { find, value } from './prom-text.ts';

async function* chunksOf(parts: readonly (string | Uint8Array)[]): AsyncGenerator<string | Uint8Array> {
  for (const part of parts) yield part;
}

async function collect(parts: readonly (string | Uint8Array)[]): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const ev of parseSse(chunksOf(parts))) out.push(ev);
  return out;
}

/** Cuts `bytes` into pieces of `size` bytes (the last may be shorter). */
function cut(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('sse', () => {
  describe('parseSse', () => {
    const stream =
      ': heartbeat\n\n' +
      'data: {"type":"start"}\n\n' +
      'event: delta\ndata: héllo 😀\n\n' +
      'data: line one\ndata: line two\n\n' +
      'event: done\ndata:[DONE]\n\n';
    const expected: SseEvent[] = [
      { event: undefined, data: '{"type":"start"}' },
      { event: 'delta', data: 'héllo 😀' },
      { event: undefined, data: 'line one\nline two' },
      { event: 'done', data: '[DONE]' },
    ];

    it('reads events, names, multi-line data and skips comment heartbeats', async () => {
      expect(await collect([stream])).toEqual(expected);
    });

    it('gives the same events however the bytes are split into chunks', async () => {
      const bytes = new TextEncoder().encode(stream);
      for (let size = 1; size <= bytes.length; size++) {
        expect(await collect(cut(bytes, size)), `chunks of ${size} bytes`).toEqual(expected);
      }
    });

    it('reads CRLF line endings, even when CR and LF arrive in different chunks', async () => {
      const crlf = stream.replace(/\n/g, '\r\n');
      expect(await collect([crlf])).toEqual(expected);
      expect(await collect(cut(new TextEncoder().encode(crlf), 3))).toEqual(expected);
    });

    it('reads whole-event runs: one per read, cut at its last blank line, CRLF made LF', async () => {
      const runs: string[] = [];
      for await (const run of sseRuns(chunksOf(['data: a\r\n\r\ndata: b\r', '\n\r\ndata: c', '\n\ndata: tail']))) runs.push(run);
      expect(runs).toEqual(['data: a\n\n', 'data: b\n\n', 'data: c\n\n', 'data: tail']);
    });

    it('reads string chunks as well as bytes', async () => {
      expect(await collect(['data: a', 'b\n', '\nevent: x\nda', 'ta: c\n\n'])).toEqual([
        { event: undefined, data: 'ab' },
        { event: 'x', data: 'c' },
      ]);
    });

    it('yields a trailing event that has no blank line after it', async () => {
      expect(await collect(['data: first\n\ndata: last'])).toEqual([
        { event: undefined, data: 'first' },
        { event: undefined, data: 'last' },
      ]);
      expect(await collect(['event: end\ndata: last\n'])).toEqual([{ event: 'end', data: 'last' }]);
    });

    it('removes one space after `data:` only, and keeps empty data', async () => {
      expect(await collect(['data:  two\n\ndata:\n\n'])).toEqual([
        { event: undefined, data: ' two' },
        { event: undefined, data: '' },
      ]);
    });

    it('ignores unknown fields and events that carry no data', async () => {
      expect(await collect(['id: 7\nretry: 1000\nevent: lonely\n\nfoo: bar\ndata: kept\n\n'])).toEqual([
        { event: undefined, data: 'kept' },
      ]);
    });

    it('yields nothing for an empty or comment-only stream', async () => {
      expect(await collect([])).toEqual([]);
      expect(await collect([': keep-alive\n\n: keep-alive\n\n'])).toEqual([]);
    });
  });

  describe('startSse', () => {
    let service: Service;
    let base: string;
    /** What each /stream handler saw of its writer just before ending. */
    const streamState: { closed: boolean; aborted: boolean; writer: SseWriter }[] = [];
    // One deferred per /hang?id=…: what the server saw when that client left.
    const abortSeen = new Map<string, ReturnType<typeof deferred<{ closed: boolean; reason: string }>>>();
    const aborted = (id: string) => {
      if (!abortSeen.has(id)) abortSeen.set(id, deferred());
      return abortSeen.get(id)!;
    };
    /** Opens /hang?id=…, reads the first event, then disconnects. */
    const openAndLeave = async (id: string): Promise<string> => {
      const client = new AbortController();
      const res = await fetch(`${base}/hang?id=${id}`, { signal: client.signal });
      const first = await res.body!.getReader().read();
      client.abort();
      return new TextDecoder().decode(first.value);
    };
    const within = <T>(p: Promise<T>, ms: number) =>
      Promise.race([p, new Promise((r) => setTimeout(() => r(`nothing within ${ms} ms`), ms))]);

    beforeAll(async () => {
      // fetch reconnects after an abort; closing must not wait for that spare socket to idle out.
      service = createService({
        name: 'svc',
        version: '1.0.0',
        logLevel: 'info',
        logger: silentLogger(),
        fastify: { forceCloseConnections: true },
      });
      service.app.get('/stream', async (_request, reply) => {
        const sse = startSse(reply, { 'x-stream-id': 's1' });
        await sse.send({ type: 'start', n: 1 });
        await sse.send('plain text', 'note');
        await sse.comment('ping');
        streamState.push({ closed: sse.closed, aborted: sse.signal.aborted, writer: sse });
        sse.end();
      });
      service.app.get('/hang', async (request, reply) => {
        const sse = startSse(reply);
        await sse.send({ type: 'start' });
        sse.signal.addEventListener('abort', () => {
          aborted((request.query as { id: string }).id).resolve({ closed: sse.closed, reason: (sse.signal.reason as Error).message });
          sse.end();
        });
      });
      await service.app.listen({ host: '127.0.0.1', port: 0 });
      base = `http://127.0.0.1:${(service.app.server.address() as { port: number }).port}`;
    });
    afterAll(() => service.app.close());

    it('answers with the event-stream headers', async () => {
      const res = await fetch(`${base}/stream`);
      await res.text();
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('x-accel-buffering')).toBe('no');
      expect(res.headers.get('x-stream-id')).toBe('s1');
    });

    it('frames data events, named events and comments', async () => {
      const res = await fetch(`${base}/stream`);
      expect(await res.text()).toBe('data: {"type":"start","n":1}\n\nevent: note\ndata: plain text\n\n: ping\n\n');
      const state = streamState.at(-1)!;
      expect({ closed: state.closed, aborted: state.aborted }).toEqual({ closed: false, aborted: false });
      // Ending normally is not a disconnect.
      await new Promise((r) => setTimeout(r, 20));
      expect(state.writer.signal.aborted).toBe(false);
    });

    it('is read back by parseSse', async () => {
      const res = await fetch(`${base}/stream`);
      const events: SseEvent[] = [];
      for await (const ev of parseSse(res.body!)) events.push(ev);
      expect(events).toEqual([
        { event: undefined, data: '{"type":"start","n":1}' },
        { event: 'note', data: 'plain text' },
      ]);
    });

    it('aborts its signal when the client disconnects', async () => {
      expect(await openAndLeave('a')).toBe('data: {"type":"start"}\n\n');
      expect(await within(aborted('a').promise, 3000)).toEqual({ closed: true, reason: 'client disconnected' });
    });

    it('counts streams in http_server_stream_duration_seconds, not in the request-latency histogram', async () => {
      const labels = { service: 'svc', method: 'GET', route: '/stream', status_code: '200' };
      const render = async () => (await service.app.inject({ method: 'GET', url: '/metrics' })).body;
      const before = value(await render(), 'http_server_stream_duration_seconds_count', labels) ?? 0;
      const res = await fetch(`${base}/stream`);
      await res.text();
      // onResponse runs right after the response ends; give it a moment.
      let body = await render();
      for (let i = 0; i < 50 && value(body, 'http_server_stream_duration_seconds_count', labels) !== before + 1; i++) {
        await new Promise((r) => setTimeout(r, 20));
        body = await render();
      }
      expect(value(body, 'http_server_stream_duration_seconds_count', labels)).toBe(before + 1);
      expect(find(body, 'http_server_request_duration_seconds_count', { route: '/stream' })).toEqual([]);
      expect(find(body, 'http_server_request_duration_seconds_count', { route: '/hang' })).toEqual([]);
    });

    it('counts a stream the client left once, as 499', async () => {
      const render = async () => (await service.app.inject({ method: 'GET', url: '/metrics' })).body;
      const before = value(await render(), 'http_server_stream_duration_seconds_count', { route: '/hang', status_code: '499' }) ?? 0;
      await openAndLeave('b');
      await within(aborted('b').promise, 3000);
      // The abort hook runs on the same close event as the signal; give it a moment.
      let body = await render();
      for (
        let i = 0;
        i < 50 && value(body, 'http_server_stream_duration_seconds_count', { route: '/hang', status_code: '499' }) !== before + 1;
        i++
      ) {
        await new Promise((r) => setTimeout(r, 20));
        body = await render();
      }
      expect(
        find(body, 'http_server_stream_duration_seconds_count', { route: '/hang' }).map((s) => [s.labels.status_code, s.value]),
      ).toEqual([['499', before + 1]]);
    });
  });
});
