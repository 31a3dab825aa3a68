/**
 * A client that does not read must not make the gateway buffer without bound: once more than
 * `maxBufferedBytes` wait to be sent, the connection is closed with 4008 and counted. (Loopback TCP
 * buffers hold tens of megabytes, so the socket here is a stand-in whose backlog the test sets.)
 */
import { describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import { ServiceMetrics } from '@codelab/service-kit';
import { silentLogger } from '@codelab/service-kit/testing';
import { createGatewayMetrics } from '../../src/metrics.ts';
import type { RuntimeClient } from '../../src/runtime-client.ts';
import { handleConnection, type ConnectionRequest } from '../../src/ws/connection-handler.ts';

class StandInSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  sent: string[] = [];
  closedWith: number | undefined;
  send(data: string): void {
    this.sent.push(data);
    this.bufferedAmount += data.length; // nothing is ever read
  }
  close(code: number): void {
    this.closedWith = code;
    this.readyState = 3;
    this.emit('close', code);
  }
}

describe('handleConnection', () => {
  it('closes a slow reader with 4008 once its send buffer passes the limit, and counts it', async () => {
    const serviceMetrics = new ServiceMetrics('gateway');
    const metrics = createGatewayMetrics(serviceMetrics);
    const tokens = Array.from(
      { length: 500 },
      (_, i) => `data: {"type":"assistant_message","token":"token-${i} ","is_final":false}\n\n`,
    ).join('');
    const runtime = {
      access: async () => ({ exists: false, allowed: true }),
      openTurn: async () => ({
        statusCode: 200,
        headers: {},
        body: (async function* () {
          yield Buffer.from(tokens);
        })(),
      }),
    } as unknown as RuntimeClient;
    const socket = new StandInSocket();
    const request = {
      params: { sessionId: 's1' },
      query: {},
      principal: undefined,
      headers: {},
      log: silentLogger(),
    } as unknown as ConnectionRequest;
    const inFlight = new Set<Promise<void>>();
    handleConnection(socket as unknown as WebSocket, request, {
      runtime,
      metrics,
      serviceMetrics,
      maxQueuedFrames: 4,
      maxBufferedBytes: 2048,
      maxMessageBytes: 1024 * 1024,
      isDraining: () => false,
      inFlight,
    });
    socket.emit('message', Buffer.from(JSON.stringify({ type: 'user_message', content: 'hi' })), false);
    await Promise.all([...inFlight]);
    expect(socket.closedWith).toBe(4008);
    expect(socket.sent.length).toBeGreaterThan(10);
    expect(socket.sent.length).toBeLessThan(100); // it stopped sending once the backlog passed 2 KiB
    const { body } = await serviceMetrics.render(undefined);
    expect(body).toMatch(/^gateway_ws_slow_reader_drops_total 1$/m);
    expect(body).toMatch(/^gateway_ws_closes_total\{code="4008"\} 1$/m);
  });
});
