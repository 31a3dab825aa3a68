/**
 * The real gateway app (authentication off) in front of a stub runtime, both on loopback ports,
 * and a WebSocket client that records every frame and lets a test await the ones it expects.
 */
import WebSocket from 'ws';
import { listen, type Service } from '@codelab/service-kit';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import type { Logger } from 'pino';
import { buildApp } from '../../src/app.ts';
import { readGatewayConfig } from '../../src/config.ts';
import { StubRuntime } from './stub-runtime.ts';

export interface Harness {
  runtime: StubRuntime;
  gateway: Service;
  url: string;
  ws: string;
  /** Opens a client on `/api/v1/ws/<path>` and waits for the handshake. */
  connect(path: string, opts?: { autoPong?: boolean }): Promise<FrameClient>;
  /** The gateway's /metrics text. */
  metrics(): Promise<string>;
  close(): Promise<void>;
}

export async function startHarness(env: Record<string, string> = {}, logger: Logger = silentLogger()): Promise<Harness> {
  const runtime = new StubRuntime();
  const runtimeUrl = await runtime.start();
  const gateway = await buildApp(
    readGatewayConfig({ GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY, GATEWAY__AGENT_URL: runtimeUrl, GATEWAY__USE_JWT_AUTH: 'false', ...env }),
    { logger },
  );
  const url = await listen(gateway, { host: '127.0.0.1', port: 0 });
  const ws = url.replace(/^http/, 'ws');
  const clients: FrameClient[] = [];
  return {
    runtime,
    gateway,
    url,
    ws,
    connect: async (path, opts) => {
      const client = new FrameClient(`${ws}/api/v1/ws/${path}`, opts);
      clients.push(client);
      await client.open();
      return client;
    },
    metrics: async () => (await fetch(`${url}/metrics`)).text(),
    close: async () => {
      for (const c of clients) c.ws.terminate();
      await gateway.app.close();
      await runtime.close();
    },
  };
}

export class FrameClient {
  readonly frames: Record<string, unknown>[] = [];
  readonly ws: WebSocket;
  closeCode: number | undefined;
  private waiters: (() => void)[] = [];
  private readonly opened: Promise<void>;
  private readonly closedP: Promise<number>;

  constructor(url: string, opts: { autoPong?: boolean } = {}) {
    this.ws = new WebSocket(url, { autoPong: opts.autoPong ?? true });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`handshake refused: ${res.statusCode}`), { statusCode: res.statusCode })));
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.closedP = new Promise((resolve) => this.ws.once('close', (code) => resolve((this.closeCode = code))));
    this.ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as Record<string, unknown>);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  open(): Promise<void> {
    return this.opened;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Resolves with the frames up to and including the first one (from `from`) matching `pred`. */
  async until(pred: (f: Record<string, unknown>) => boolean, from = 0, timeoutMs = 5_000): Promise<Record<string, unknown>[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex((f, idx) => idx >= from && pred(f));
      if (i >= 0) return this.frames.slice(from, i + 1);
      if (Date.now() > deadline) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(from))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  closed(): Promise<number> {
    return this.closedP;
  }

  close(): void {
    this.ws.close();
  }
}
