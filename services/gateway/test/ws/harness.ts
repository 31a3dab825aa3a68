/**
 * The real gateway app (authentication off) in front of a stub runtime, both on loopback ports,
 * and a WebSocket client that records every frame and lets a test await the ones it expects.
 */
import { listen, type Service } from '@codelab/service-kit';
import { silentLogger, TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';
import type { Logger } from 'pino';
import { buildApp } from '../../src/app.ts';
import { readGatewayConfig } from '../../src/config.ts';
import { FrameClient } from '../../../../test/helpers/stack.ts';
import { StubRuntime } from './stub-runtime.ts';

export { FrameClient };

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

export async function startHarness(
  env: Record<string, string> = {},
  logger: Logger = silentLogger(),
  /** Runs on the built app before it listens (hooks of a test's own). */
  beforeListen?: (gateway: Service) => void,
): Promise<Harness> {
  const runtime = new StubRuntime();
  const runtimeUrl = await runtime.start();
  const gateway = await buildApp(
    readGatewayConfig({
      GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
      GATEWAY__AGENT_URL: runtimeUrl,
      GATEWAY__USE_JWT_AUTH: 'false',
      ...env,
    }),
    { logger },
  );
  beforeListen?.(gateway);
  const url = await listen(gateway, { host: '127.0.0.1', port: 0 });
  const ws = url.replace(/^http/, 'ws');
  const clients: FrameClient[] = [];
  return {
    runtime,
    gateway,
    url,
    ws,
    connect: async (path, opts) => {
      const client = new FrameClient(`${ws}/api/v1/ws/${path}`, {}, { timeoutMs: 5_000, ...opts });
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
