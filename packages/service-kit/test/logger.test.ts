import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, LineBatch, loggerOptions, redactSecrets, redactUrl } from '../src/logger.ts';
import { createService } from '../src/service.ts';
import { capturingLogger, memoryLines } from '@codelab/service-kit/testing';

/** A kit logger (with its redaction and serializers) writing to memory. */
function memoryLogger(level = 'info') {
  const { destination, lines } = memoryLines();
  return { logger: createLogger({ service: 'svc', level, destination }), lines };
}

const R = '[REDACTED]';
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('logger', () => {
  describe('createLogger', () => {
    it('writes one JSON line with the level name, service, ISO time and msg', () => {
      const { logger, lines } = memoryLogger();
      logger.info({ user: 'ada' }, 'hello');
      const [line] = lines();
      expect(line).toMatchObject({ level: 'info', service: 'svc', user: 'ada', msg: 'hello' });
      expect(line!.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(lines()).toHaveLength(1);
    });

    it('takes upstream level names (WARNING drops info, keeps warn)', () => {
      const { logger, lines } = memoryLogger('WARNING');
      logger.info('dropped');
      logger.warn('kept');
      expect(lines().map((l) => [l.level, l.msg])).toEqual([['warn', 'kept']]);
      expect(loggerOptions({ service: 's', level: 'CRITICAL' }).level).toBe('fatal');
    });

    it('redacts secret fields at the top level', () => {
      const { logger, lines } = memoryLogger();
      logger.info(
        {
          authorization: 'Bearer abc',
          password: 'p',
          token: 't',
          access_token: 'a',
          refresh_token: 'r',
          client_secret: 'c',
          internalApiKey: 'k',
          username: 'ada',
        },
        'm',
      );
      expect(lines()[0]).toMatchObject({
        authorization: R,
        password: R,
        token: R,
        access_token: R,
        refresh_token: R,
        client_secret: R,
        internalApiKey: R,
        username: 'ada',
      });
    });

    it('redacts secret fields one level deep', () => {
      const { logger, lines } = memoryLogger();
      logger.info(
        {
          body: { password: 'p', token: 't', access_token: 'a', refresh_token: 'r', client_secret: 'c', grant_type: 'password' },
          config: { internalApiKey: 'k', port: 1 },
        },
        'm',
      );
      expect(lines()[0]).toMatchObject({
        body: { password: R, token: R, access_token: R, refresh_token: R, client_secret: R, grant_type: 'password' },
        config: { internalApiKey: R, port: 1 },
      });
    });

    it('redacts the authorization, cookie and x-internal-auth headers', () => {
      const { logger, lines } = memoryLogger();
      logger.info({ headers: { authorization: 'Bearer abc', cookie: 'sid=1', 'x-internal-auth': 'key', accept: 'text/html' } }, 'outbound');
      logger.info({ peer: { 'x-internal-auth': 'key', authorization: 'Basic x' } }, 'nested');
      const [first, second] = lines();
      expect(first!.headers).toEqual({ authorization: R, cookie: R, 'x-internal-auth': R, accept: 'text/html' });
      expect(second!.peer).toEqual({ 'x-internal-auth': R, authorization: R });
      expect(JSON.stringify(lines())).not.toMatch(/Bearer abc|sid=1|"key"|Basic x/);
    });

    // Regression: `log.info(request.headers)` wrote the internal key and cookies in clear.
    it('redacts x-internal-auth and cookie of a headers object logged at the top level', () => {
      const { logger, lines } = memoryLogger();
      logger.info({ authorization: 'Bearer abc', cookie: 'sid=1', 'x-internal-auth': 'the-internal-key' }, 'headers');
      expect(lines()[0]).toMatchObject({ authorization: R, cookie: R, 'x-internal-auth': R });
    });

    it("redacts secrets in any letter case, in arrays, in errors and in a child logger's lines, up to four levels deep", () => {
      const { logger, lines } = memoryLogger();
      const logged = {
        peer: { request: { headers: { Authorization: 'Bearer deep', Accept: 'json' } } },
        items: [{ token: 't1', id: 1 }, 'plain'],
        too: { deep: { for: { the: { token: 'kept-at-level-5' } } } },
      };
      logger.info(logged, 'deep');
      const err = Object.assign(new Error('upstream refused'), { config: { headers: { cookie: 'sid=2' } }, status: 401 });
      logger.error({ err }, 'failed');
      logger.child({ session_id: 's1' }).info({ body: { password: 'child-secret' } }, 'child');
      const [deep, failed, child] = lines();
      expect(deep).toMatchObject({
        peer: { request: { headers: { Authorization: R, Accept: 'json' } } },
        items: [{ token: R, id: 1 }, 'plain'],
        too: { deep: { for: { the: { token: 'kept-at-level-5' } } } },
      });
      expect(failed!.err).toMatchObject({ type: 'Error', message: 'upstream refused', status: 401, config: { headers: { cookie: R } } });
      expect(failed!.err).toHaveProperty('stack');
      expect(child).toMatchObject({ body: { password: R }, session_id: 's1', msg: 'child' });
      expect(JSON.stringify(lines())).not.toMatch(/Bearer deep|t1|sid=2|child-secret/);
      // The caller's objects are left as they were.
      expect(logged.peer.request.headers.Authorization).toBe('Bearer deep');
      expect(logged.items[0]).toEqual({ token: 't1', id: 1 });
      expect(err.config.headers.cookie).toBe('sid=2');
    });

    it('returns an object without secrets as it is (no copy)', () => {
      const fields = { status: 200, route: '/x', nested: { list: [1, 2] } };
      expect(redactSecrets(fields)).toBe(fields);
      expect(redactSecrets('text')).toBe('text');
      expect(redactSecrets(null)).toBeNull();
    });

    it('logs a request by method, redacted url, address and user agent only', async () => {
      const { logger, lines } = memoryLogger();
      const { app } = createService({ name: 'svc', version: '1.0.0', logLevel: 'info', logger });
      app.get('/ws', async () => ({ ok: true }));
      await app.inject({
        method: 'GET',
        url: '/ws?access_token=eyJsecret&x=1',
        headers: { authorization: 'Bearer eyJsecret', 'user-agent': 'test-agent' },
      });
      await app.close();
      // one line per request, when it ends
      expect(
        lines()
          .filter((l) => l.reqId !== undefined)
          .map((l) => l.msg),
      ).toEqual(['request completed']);
      const completed = lines().find((l) => l.msg === 'request completed');
      expect(completed).toMatchObject({ res: { statusCode: 200 }, responseTime: expect.any(Number) });
      expect(completed!.req).toEqual({
        method: 'GET',
        url: `/ws?access_token=${R}&x=1`,
        remote_address: '127.0.0.1',
        user_agent: 'test-agent',
      });
      expect(JSON.stringify(lines())).not.toContain('eyJsecret');
    });
  });

  describe('redactUrl', () => {
    it.each([
      ['/ws?access_token=eyJ.abc.def', `/ws?access_token=${R}`],
      ['/ws?session=1&access_token=eyJ&x=2', `/ws?session=1&access_token=${R}&x=2`],
      ['/cb?token=t#frag', `/cb?token=${R}#frag`],
      ['/login?password=p&client_secret=s', `/login?password=${R}&client_secret=${R}`],
      ['/ws?ACCESS_TOKEN=eyJ', `/ws?ACCESS_TOKEN=${R}`],
      ['/ws?my_access_token=keep&id=1', '/ws?my_access_token=keep&id=1'],
      ['/sessions/42', '/sessions/42'],
    ])('turns %s into %s', (url, expected) => {
      expect(redactUrl(url)).toBe(expected);
    });

    it('passes undefined through', () => {
      expect(redactUrl(undefined)).toBeUndefined();
    });
  });

  describe('request log lines (createService)', () => {
    function tracedService() {
      const capture = capturingLogger();
      const service = createService({ name: 'svc', version: '1.0.0', logLevel: 'info', logger: capture.logger });
      service.app.get('/work', async (request) => {
        request.log.info('working');
        return request.traceIds();
      });
      return { ...capture, service };
    }

    it('puts the trace_id and span_id on every line of a request', async () => {
      const { service, lines } = tracedService();
      const res = await service.app.inject({ method: 'GET', url: '/work', headers: { 'x-request-id': 'req-one' } });
      await service.app.close();
      const ids = res.json() as { trace_id: string; span_id: string };
      expect(ids.trace_id).toMatch(/^[\da-f]{32}$/);
      expect(ids.span_id).toMatch(/^[\da-f]{16}$/);
      const mine = lines().filter((l) => l.reqId === 'req-one');
      expect(mine.map((l) => l.msg)).toEqual(['working', 'request completed']);
      for (const line of mine) expect({ trace_id: line.trace_id, span_id: line.span_id }).toEqual(ids);
    });

    it('continues the trace id of an incoming traceparent', async () => {
      const { service, lines } = tracedService();
      const res = await service.app.inject({
        method: 'GET',
        url: '/work',
        headers: { traceparent: TRACEPARENT, 'x-request-id': 'req-tp' },
      });
      await service.app.close();
      expect(res.json().trace_id).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
      const mine = lines().filter((l) => l.reqId === 'req-tp');
      expect(mine.map((l) => l.msg)).toEqual(['working', 'request completed']);
      for (const line of mine) expect(line.trace_id).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
      // The request is a new span of that trace, not the caller's span.
      expect(mine[0]!.span_id).not.toBe('00f067aa0ba902b7');
    });

    it('gives two requests different trace ids', async () => {
      const { service, lines } = tracedService();
      await service.app.inject({ method: 'GET', url: '/work', headers: { 'x-request-id': 'req-a' } });
      await service.app.inject({ method: 'GET', url: '/work', headers: { 'x-request-id': 'req-b' } });
      await service.app.close();
      const traceOf = (id: string) => [
        ...new Set(
          lines()
            .filter((l) => l.reqId === id)
            .map((l) => l.trace_id),
        ),
      ];
      const a = traceOf('req-a');
      const b = traceOf('req-b');
      expect(a).toHaveLength(1);
      expect(b).toHaveLength(1);
      expect(a[0]).toMatch(/^[\da-f]{32}$/);
      expect(b[0]).toMatch(/^[\da-f]{32}$/);
      expect(a[0]).not.toBe(b[0]);
    });
  });

  describe('stdout (a real process: lines batched, none lost at exit)', () => {
    const loggerFile = fileURLToPath(new URL('../src/logger.ts', import.meta.url));
    /** A node process running `body` with `log`, a kit logger writing to its stdout. */
    function child(body: string) {
      const script = `import { createLogger } from ${JSON.stringify(loggerFile)};\nconst log = createLogger({ service: 'svc', level: 'info' });\n${body}`;
      const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString('utf8');
      });
      const exited = new Promise<number | null>((resolve) => proc.once('close', resolve));
      const lines = () =>
        out
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { msg: string; n?: number });
      return { proc, exited, lines };
    }

    it('writes every line logged right before process.exit, in order', async () => {
      const c = child(`for (let n = 0; n < 500; n++) log.info({ n }, 'line');\nprocess.exit(0);`);
      expect(await c.exited).toBe(0);
      expect(c.lines().map((l) => l.n)).toEqual(Array.from({ length: 500 }, (_, n) => n));
    });

    it('writes every line of a process that ends by itself (nothing left to do), in order', async () => {
      const c = child(`for (let n = 0; n < 500; n++) log.info({ n }, 'line');`);
      expect(await c.exited).toBe(0);
      expect(c.lines().map((l) => l.n)).toEqual(Array.from({ length: 500 }, (_, n) => n));
    });

    it('writes the lines of a live, idle process without waiting for more lines or for exit', async () => {
      // stays alive until its stdin closes; logs two lines once
      const c = child(`log.info('first');\nlog.info('second');\nprocess.stdin.resume();\nprocess.stdin.on('end', () => process.exit(0));`);
      try {
        await vi.waitFor(() => expect(c.lines().map((l) => l.msg)).toEqual(['first', 'second']), { timeout: 20_000, interval: 20 });
        expect(c.proc.exitCode).toBeNull();
      } finally {
        c.proc.stdin.end();
        await c.exited;
      }
    });
  });

  describe('LineBatch (lines for the Loki worker thread and stdout)', () => {
    afterEach(() => {
      vi.useRealTimers();
    });
    function target() {
      const writes: string[] = [];
      let flushed = 0;
      return { writes, flushed: () => flushed, stream: { write: (s: string) => void writes.push(s), flushSync: () => void flushed++ } };
    }

    it('hands the lines of one delay over in one write, in order', () => {
      vi.useFakeTimers();
      const t = target();
      const batch = new LineBatch(t.stream, 100);
      batch.write('{"n":1}\n');
      batch.write('{"n":2}\n');
      vi.advanceTimersByTime(99);
      expect(t.writes).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(t.writes).toEqual(['{"n":1}\n{"n":2}\n']);
      batch.write('{"n":3}\n');
      vi.advanceTimersByTime(100);
      expect(t.writes).toEqual(['{"n":1}\n{"n":2}\n', '{"n":3}\n']);
      vi.advanceTimersByTime(1000);
      expect(t.writes).toHaveLength(2); // nothing waiting, nothing written
    });

    it('hands over at once when maxChars are waiting, and on flushSync', () => {
      vi.useFakeTimers();
      const t = target();
      const batch = new LineBatch(t.stream, 100, 10);
      batch.write('12345\n');
      expect(t.writes).toEqual([]);
      batch.write('67890\n');
      expect(t.writes).toEqual(['12345\n67890\n']);
      batch.write('last\n');
      batch.flushSync();
      expect(t.writes).toEqual(['12345\n67890\n', 'last\n']);
      expect(t.flushed()).toBe(1);
      vi.advanceTimersByTime(1000);
      expect(t.writes).toHaveLength(2);
    });

    it("hands what waits over when the process exits, before the exit listeners registered earlier (the transport's)", () => {
      const t = target();
      const batch = new LineBatch(t.stream, 60_000);
      // the first exit listener is the batch's (prepended): call it as the exit would, first
      const first = process.listeners('exit')[0] as () => void;
      try {
        batch.write('pending\n');
        expect(t.writes).toEqual([]);
        first();
        expect(t.writes).toEqual(['pending\n']);
      } finally {
        process.removeListener('exit', first);
      }
    });
  });
});
