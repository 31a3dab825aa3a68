/**
 * HTTP/2 without TLS (h2c) beside HTTP/1.1 on a service's port (h2c.ts), and PeerClient's h2c
 * calls: both protocols answer on one port, an SSE response streams over h2c, calls share a
 * connection up to the streams a client allows, bytes of the preface arriving apart still make an
 * h2c connection, shutdown is graceful for running streams, and the client's pool (h2c-pool.ts)
 * sends no new call on a connection told to go away, past its time, whose call timed out, or
 * stalled (a PING unanswered).
 */
import net from 'node:net';
import http from 'node:http';
import http2 from 'node:http2';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '@codelab/service-kit/testing';
import { isH2cPreface } from '../src/h2c.ts';
import { H2cPool } from '../src/h2c-pool.ts';
import { PeerClient } from '../src/http-client.ts';
import { ServiceMetrics } from '../src/metrics.ts';
import { createService, type Service } from '../src/service.ts';
import { startSse } from '../src/sse.ts';
import { value } from './prom-text.ts';

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => undefined);
});

/** A service with routes that report the protocol and HTTP/2 session of each call; its base URL. */
async function start(): Promise<{ svc: Service; url: string; sessions: Set<unknown>; release: () => void }> {
  const svc = createService({ name: 'h2c-test', version: '1.0.0', logLevel: 'info', logger: silentLogger() });
  const sessions = new Set<unknown>();
  let gate = deferred();
  svc.app.get('/version', async (request) => {
    const stream = (request.raw as unknown as { stream?: { session: unknown } }).stream;
    if (stream) sessions.add(stream.session);
    return { version: request.raw.httpVersion };
  });
  // headers only when the test releases it
  svc.app.get('/silent', async () => {
    await gate.promise;
    return { late: true };
  });
  svc.app.post('/echo', async (request) => ({ version: request.raw.httpVersion, body: request.body }));
  // an SSE answer: one event at once, the second and the end when the test releases it
  svc.app.get('/events', async (request, reply) => {
    const stream = (request.raw as unknown as { stream?: { session: unknown } }).stream;
    if (stream) sessions.add(stream.session);
    const sse = startSse(reply);
    await sse.send({ n: 1, version: request.raw.httpVersion });
    await gate.promise;
    await sse.send({ n: 2 });
    sse.end();
  });
  await svc.app.listen({ host: '127.0.0.1', port: 0 });
  cleanup.push(() => svc.app.close());
  const { port } = svc.app.server.address() as { port: number };
  return {
    svc,
    url: `http://127.0.0.1:${port}`,
    sessions,
    release: () => {
      gate.resolve();
      gate = deferred();
    },
  };
}

function peer(url: string, h2cStreams?: number, metrics = new ServiceMetrics('h2c-test-client')): PeerClient {
  const client = new PeerClient({ peer: 'test', baseUrl: url, metrics, h2cStreams });
  cleanup.push(() => client.close());
  return client;
}

describe('isH2cPreface', () => {
  it('says true for the whole preface, undefined for a part of it, false for anything else', () => {
    expect(isH2cPreface(Buffer.from(PREFACE))).toBe(true);
    expect(isH2cPreface(Buffer.from(`${PREFACE}\x00\x00\x12\x04`))).toBe(true);
    expect(isH2cPreface(Buffer.from('P'))).toBeUndefined();
    expect(isH2cPreface(Buffer.from('PRI * HTTP/2.0\r\n'))).toBeUndefined();
    expect(isH2cPreface(Buffer.from('POST /x HTTP/1.1\r\n'))).toBe(false);
    expect(isH2cPreface(Buffer.from('PRI * HTTP/1.1\r\n\r\n'))).toBe(false);
    expect(isH2cPreface(Buffer.from('GET / HTTP/1.1\r\n'))).toBe(false);
  });
});

describe('a service port speaks HTTP/1.1 and h2c', () => {
  it('answers HTTP/1.1 and h2c calls on the same port, POST bodies included', async () => {
    const { url } = await start();
    const h1 = await fetch(`${url}/version`);
    expect(await h1.json()).toEqual({ version: '1.1' });
    const post = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(await post.json()).toEqual({ version: '1.1', body: { a: 1 } });
    const client = peer(url, 8);
    const h2 = await client.request({ method: 'GET', path: '/version', route: '/version' });
    expect(await h2.body.json()).toEqual({ version: '2.0' });
    const h2post = await client.request({ method: 'POST', path: '/echo', route: '/echo', body: { a: 2 } });
    expect(await h2post.body.json()).toEqual({ version: '2.0', body: { a: 2 } });
    // and without h2cStreams the client speaks HTTP/1.1
    const plain = await peer(url).request({ method: 'GET', path: '/version', route: '/version' });
    expect(await plain.body.json()).toEqual({ version: '1.1' });
  });

  it('streams an SSE answer over h2c (no connection header, which HTTP/2 refuses)', async () => {
    const { url, release } = await start();
    const res = await peer(url, 8).request({ method: 'GET', path: '/events', route: '/events' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(res.headers.connection).toBeUndefined();
    const reader = res.body[Symbol.asyncIterator]();
    const first = await reader.next();
    expect(String(first.value)).toBe('data: {"n":1,"version":"2.0"}\n\n');
    release();
    let rest = '';
    for (let r = await reader.next(); !r.done; r = await reader.next()) rest += String(r.value);
    expect(rest).toBe('data: {"n":2}\n\n');
  });

  it('an SSE writer whose h2c client went away writes nothing more and does not wait (HTTP/2 responses have no `destroyed`)', async () => {
    const svc = createService({ name: 'h2c-gone', version: '1.0.0', logLevel: 'info', logger: silentLogger() });
    const after: { closed?: boolean; wrote?: boolean } = {};
    svc.app.get('/gone', async (_request, reply) => {
      const sse = startSse(reply);
      await sse.send({ n: 1 });
      // the client resets the stream: the writer sees it, and a write after it returns at once
      await once(sse.signal, 'abort');
      after.closed = sse.closed;
      await sse.send({ n: 2 });
      after.wrote = true;
      sse.end('data: last\n\n');
    });
    await svc.app.listen({ host: '127.0.0.1', port: 0 });
    cleanup.push(() => svc.app.close());
    const { port } = svc.app.server.address() as { port: number };
    const leave = new AbortController();
    const res = await peer(`http://127.0.0.1:${port}`, 8).request({ method: 'GET', path: '/gone', route: '/gone', signal: leave.signal });
    const reader = res.body[Symbol.asyncIterator]();
    expect(String((await reader.next()).value)).toBe('data: {"n":1}\n\n');
    // as the gateway leaves a turn whose client went away: the call's signal
    leave.abort();
    await reader.next().catch(() => undefined);
    await vi.waitFor(() => expect(after).toEqual({ closed: true, wrote: true }), { timeout: 10_000 });
  });

  it('carries a client’s calls on one connection, up to the streams it allows per connection', async () => {
    const shared = await start();
    const client = peer(shared.url, 32);
    const streams = await Promise.all(
      Array.from({ length: 5 }, () => client.request({ method: 'GET', path: '/events', route: '/events' })),
    );
    expect(shared.sessions.size).toBe(1);
    shared.release();
    await Promise.all(streams.map((s) => s.body.text()));

    const bounded = await start();
    const narrow = peer(bounded.url, 2);
    const five = await Promise.all(Array.from({ length: 5 }, () => narrow.request({ method: 'GET', path: '/events', route: '/events' })));
    expect(bounded.sessions.size).toBe(3);
    bounded.release();
    await Promise.all(five.map((s) => s.body.text()));
  });

  it('reports its h2c connections and the calls running on them', async () => {
    const { url, release } = await start();
    const metrics = new ServiceMetrics('h2c-metrics-client');
    const client = peer(url, 8, metrics);
    const scrape = async (): Promise<string> => (await metrics.render(undefined)).body;
    const labels = { service: 'h2c-metrics-client', peer: 'test' };
    const streams = await Promise.all([1, 2].map(() => client.request({ method: 'GET', path: '/events', route: '/events' })));
    let body = await scrape();
    expect(value(body, 'http_client_h2c_connections', { ...labels, state: 'live' })).toBe(1);
    expect(value(body, 'http_client_h2c_connections', { ...labels, state: 'retiring' })).toBe(0);
    expect(value(body, 'http_client_h2c_streams', labels)).toBe(2);
    release();
    await Promise.all(streams.map((s) => s.body.text()));
    body = await scrape();
    expect(value(body, 'http_client_h2c_streams', labels)).toBe(0);
    // a second client to the same peer adds to the same series; a closed client leaves them
    const second = peer(url, 8, metrics);
    await (await second.request({ method: 'GET', path: '/version', route: '/version' })).body.json();
    expect(value(await scrape(), 'http_client_h2c_connections', { ...labels, state: 'live' })).toBe(2);
    await client.close();
    expect(value(await scrape(), 'http_client_h2c_connections', { ...labels, state: 'live' })).toBe(1);
    await second.close();
    expect(await scrape()).not.toMatch(/^http_client_h2c_(connections|streams)\{/m);
  });

  it('takes a connection for h2c when the preface arrives in pieces, and for HTTP/1.1 when it stops matching', async () => {
    const { url } = await start();
    const { port } = new URL(url);
    // h2c, its preface sent as 3 + 7 + the rest, each piece once the one before was written
    const socket = net.connect(Number(port), '127.0.0.1');
    socket.setNoDelay(true);
    await once(socket, 'connect');
    const session = http2.connect(url, {
      createConnection: () => {
        const write = socket.write.bind(socket);
        let sent = 0;
        socket.write = ((chunk: Buffer, ...rest: never[]) => {
          if (sent > 0 || !Buffer.isBuffer(chunk) || chunk.length < 10) return write(chunk, ...rest);
          sent++;
          write(chunk.subarray(0, 3));
          write(chunk.subarray(3, 10));
          return write(chunk.subarray(10), ...rest);
        }) as typeof socket.write;
        return socket;
      },
    });
    cleanup.push(async () => session.destroy());
    const req = session.request({ ':path': '/version' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    await once(req, 'end');
    expect(JSON.parse(body)).toEqual({ version: '2.0' });

    // "PR" and then not the preface: an HTTP/1.1 connection (which answers 400 to this bad request line)
    const h1 = net.connect(Number(port), '127.0.0.1');
    h1.setNoDelay(true);
    await once(h1, 'connect');
    h1.write('PR');
    h1.write('OPFIND / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    let answer = '';
    h1.setEncoding('utf8');
    h1.on('data', (d: string) => (answer += d));
    await once(h1, 'close');
    expect(answer).toMatch(/^HTTP\/1\.1 (400|404|405) /);
  });

  it('survives a connection that sends part of the preface and goes away', async () => {
    const { url } = await start();
    const { port } = new URL(url);
    const s = net.connect(Number(port), '127.0.0.1');
    await once(s, 'connect');
    s.end('PRI * HT');
    await once(s, 'close');
    const after = await fetch(`${url}/version`);
    expect(await after.json()).toEqual({ version: '1.1' });
  });

  it('closes gracefully: a running h2c stream finishes; the client sends no new call on the closing connection', async () => {
    const { svc, url, release } = await start();
    const pool = new H2cPool(url, { streams: 8, connections: 4, ttlMs: 60_000, client: {}, pingIntervalMs: 60_000 });
    cleanup.push(() => pool.destroy());
    const res = await pool.request({ method: 'GET', path: '/events' });
    const text = res.body.text();
    let closed = false;
    const closing = svc.app.close().then(() => (closed = true));
    // the server's GOAWAY arrives: the connection takes no new call, its stream runs on
    await vi.waitFor(() => expect(pool.stats).toEqual({ connections: 0, running: 1, retiring: 1 }), { timeout: 10_000 });
    // a new call goes to a new connection at once (refused: the port no longer listens), not behind the stream
    await expect(pool.request({ method: 'GET', path: '/version' })).rejects.toThrow(/ECONNREFUSED/);
    expect(closed).toBe(false);
    release();
    expect(await text).toBe('data: {"n":1,"version":"2.0"}\n\ndata: {"n":2}\n\n');
    await closing;
    expect(closed).toBe(true);
    await vi.waitFor(() => expect(pool.stats.retiring).toBe(0));
  });

  it('retires a connection after its time: new calls go to a new connection, the old one finishes its stream', async () => {
    const { url, sessions, release } = await start();
    const pool = new H2cPool(url, { streams: 8, connections: 4, ttlMs: 0, client: {}, pingIntervalMs: 60_000 });
    cleanup.push(() => pool.destroy());
    const first = await pool.request({ method: 'GET', path: '/events' });
    const text = first.body.text();
    // (ttl 0: the next call finds the first connection past its time)
    const second = await pool.request({ method: 'GET', path: '/version' });
    expect(await second.body.json()).toEqual({ version: '2.0' });
    expect(sessions.size).toBe(2);
    expect(pool.stats.retiring).toBe(1);
    release();
    expect(await text).toBe('data: {"n":1,"version":"2.0"}\n\ndata: {"n":2}\n\n');
    await vi.waitFor(() => expect(pool.stats).toEqual({ connections: 1, running: 0, retiring: 0 }));
  });
  it('retires a connection whose call timed out: the next call goes to a new connection', async () => {
    const { url, sessions, release } = await start();
    const pool = new H2cPool(url, { streams: 8, connections: 4, ttlMs: 60_000, client: {}, pingIntervalMs: 60_000 });
    cleanup.push(() => pool.destroy());
    expect(await (await pool.request({ method: 'GET', path: '/version' })).body.json()).toEqual({ version: '2.0' });
    // (only this call has a short headers timeout: the route answers only when released)
    await expect(pool.request({ method: 'GET', path: '/silent', headersTimeout: 300 })).rejects.toMatchObject({
      code: 'UND_ERR_HEADERS_TIMEOUT',
    });
    expect(pool.stats.connections).toBe(0);
    expect(await (await pool.request({ method: 'GET', path: '/version' })).body.json()).toEqual({ version: '2.0' });
    expect(sessions.size).toBe(2);
    release();
    // a call its caller aborts says nothing of the connection: it stays
    const leave = new AbortController();
    const aborted = pool.request({ method: 'GET', path: '/silent', signal: leave.signal });
    leave.abort();
    await expect(aborted).rejects.toThrow();
    expect(await (await pool.request({ method: 'GET', path: '/version' })).body.json()).toEqual({ version: '2.0' });
    expect(sessions.size).toBe(2);
    expect(pool.stats.connections).toBe(1);
  });

  it('resets an idle connection that stalls (its PING unanswered), and the next call goes to a new one', async () => {
    const { url, sessions } = await start();
    // a relay between pool and service that can stop forwarding, as a partition does
    let frozen = false;
    const relays = new Set<net.Socket>();
    const relay = net.createServer((inbound) => {
      const outbound = net.connect(Number(new URL(url).port), '127.0.0.1');
      relays.add(inbound).add(outbound);
      inbound.on('data', (d) => frozen || outbound.write(d));
      outbound.on('data', (d) => frozen || inbound.write(d));
      for (const [a, b] of [
        [inbound, outbound],
        [outbound, inbound],
      ] as const) {
        a.on('close', () => b.destroy());
        a.on('error', () => b.destroy());
      }
    });
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    cleanup.push(async () => {
      for (const s of relays) s.destroy();
      relay.close();
    });
    const relayUrl = `http://127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
    // (kept alive longer than the test: only the PING can end it)
    const pool = new H2cPool(relayUrl, {
      streams: 8,
      connections: 4,
      ttlMs: 60_000,
      client: { keepAliveTimeout: 60_000 },
      pingIntervalMs: 100,
    });
    cleanup.push(() => pool.destroy());
    expect(await (await pool.request({ method: 'GET', path: '/version' })).body.json()).toEqual({ version: '2.0' });
    expect(pool.stats.connections).toBe(1);
    frozen = true;
    await vi.waitFor(() => expect(pool.stats.connections).toBe(0), { timeout: 10_000 });
    frozen = false;
    expect(await (await pool.request({ method: 'GET', path: '/version' })).body.json()).toEqual({ version: '2.0' });
    expect(sessions.size).toBe(2);
  });

  it('falls back to HTTP/1.1 for a peer that refuses the HTTP/2 preface: every call answered, the fallback told once', async () => {
    const versions: string[] = [];
    const plain = http.createServer((req, res) => {
      versions.push(req.httpVersion);
      let body = '';
      req.on('data', (d: Buffer) => (body += d));
      req.on('end', () => res.end(JSON.stringify({ version: req.httpVersion, body })));
    });
    plain.listen(0, '127.0.0.1');
    await once(plain, 'listening');
    cleanup.push(async () => plain.close());
    const url = `http://127.0.0.1:${(plain.address() as net.AddressInfo).port}`;
    const warned: unknown[] = [];
    const client = new PeerClient({
      peer: 'plain',
      baseUrl: url,
      metrics: new ServiceMetrics('h2c-fallback-client'),
      h2cStreams: 8,
      log: { warn: (obj) => warned.push(obj) },
    });
    cleanup.push(() => client.close());
    // the first calls at once (on the refused connection), with bodies, through both client paths
    const answers = await Promise.all([
      client.request({ method: 'POST', path: '/a', route: '/a', body: { n: 1 } }).then((r) => r.body.json()),
      client.text({ method: 'POST', path: '/b', route: '/b', body: { n: 2 } }).then((r) => JSON.parse(r.text) as unknown),
      client.text({ method: 'GET', path: '/c', route: '/c' }).then((r) => JSON.parse(r.text) as unknown),
    ]);
    expect(answers).toEqual([
      { version: '1.1', body: '{"n":1}' },
      { version: '1.1', body: '{"n":2}' },
      { version: '1.1', body: '' },
    ]);
    expect(await (await client.request({ method: 'GET', path: '/d', route: '/d' })).body.json()).toEqual({ version: '1.1', body: '' });
    expect(warned).toEqual([{ peer: 'plain', url }]);
    // each request reached the server once
    expect(versions).toEqual(['1.1', '1.1', '1.1', '1.1']);

    // a call whose body was a stream (read by the refused attempt) is not sent again: it fails, the next goes over HTTP/1.1
    const pool = new H2cPool(url, { streams: 8, connections: 4, ttlMs: 60_000, client: {}, pingIntervalMs: 60_000 });
    cleanup.push(() => pool.destroy());
    await expect(pool.request({ method: 'POST', path: '/e', body: Readable.from(['x']) })).rejects.toMatchObject({
      code: 'ERR_HTTP2_ERROR',
    });
    expect(await (await pool.request({ method: 'POST', path: '/f', body: 'y' })).body.json()).toEqual({ version: '1.1', body: 'y' });
    expect(versions).toEqual(['1.1', '1.1', '1.1', '1.1', '1.1']);
  });

  it('does not fall back once the peer has answered over h2c: a later refusal is an error of that call', async () => {
    const { svc, url } = await start();
    let fellBack = false;
    const pool = new H2cPool(url, {
      streams: 8,
      connections: 4,
      ttlMs: 60_000,
      client: {},
      pingIntervalMs: 60_000,
      onHttp1: () => (fellBack = true),
    });
    cleanup.push(() => pool.destroy());
    expect(await (await pool.request({ method: 'GET', path: '/version' })).body.json()).toEqual({ version: '2.0' });
    // the same port now served by a program that speaks only HTTP/1.1
    await svc.app.close();
    const plain = http.createServer((_req, res) => res.end('{}'));
    plain.listen(Number(new URL(url).port), '127.0.0.1');
    await once(plain, 'listening');
    cleanup.push(async () => plain.close());
    await vi.waitFor(() => expect(pool.stats.connections).toBe(0));
    await expect(pool.request({ method: 'GET', path: '/version' })).rejects.toMatchObject({ code: 'ERR_HTTP2_ERROR' });
    expect(fellBack).toBe(false);
  });
});
