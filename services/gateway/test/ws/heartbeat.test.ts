/**
 * Protocol-level heartbeats: every silent client is pinged; one that answers (pong, or any frame)
 * stays, one that does not is terminated after GATEWAY__WS_CLOSE_TIMEOUT and counted.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import { capturingLogger } from '@codelab/service-kit/testing';
import { Heartbeat } from '../../src/ws/heartbeat.ts';
import { startHarness, type Harness } from './harness.ts';

describe('heartbeats over real sockets', () => {
  let h: Harness;
  const logs = capturingLogger();
  beforeAll(async () => {
    h = await startHarness({ GATEWAY__WS_HEARTBEAT_INTERVAL: '0.1', GATEWAY__WS_CLOSE_TIMEOUT: '0.5' }, logs.logger);
  });
  afterAll(() => h?.close());

  it('keeps a client that answers pings open, and terminates one that stopped answering', async () => {
    const live = await h.connect('s-live');
    let pings = 0;
    live.ws.on('ping', () => pings++);
    const dead = await h.connect('s-dead', { autoPong: false });
    // a client that never pongs but keeps sending frames is alive too
    const chatty = await h.connect('s-chatty', { autoPong: false });
    const chatter = setInterval(() => chatty.send({ type: 'ping' }), 50);

    expect(await dead.closed()).toBe(1006); // terminated: no close handshake with a dead peer
    await vi.waitFor(() => expect(pings).toBeGreaterThanOrEqual(3), { timeout: 30_000, interval: 50 });
    clearInterval(chatter);
    expect(live.closeCode).toBeUndefined();
    expect(chatty.closeCode).toBeUndefined();
    const metrics = await h.metrics();
    expect(metrics).toMatch(/^gateway_ws_dead_peers_total 1$/m);
    expect(metrics).toMatch(/^gateway_ws_closes_total\{code="1006"\} 1$/m);
    expect(logs.lines().filter((l) => String(l.msg).includes('answered no ping'))).toEqual([
      expect.objectContaining({ session_id: 's-dead', level: 40 }),
    ]);
    live.close();
    chatty.close();
  });
});

class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  pings = 0;
  terminated = false;
  ping(): void {
    this.pings++;
  }
  terminate(): void {
    this.terminated = true;
    this.readyState = 3;
    this.emit('close', 1006);
  }
}

describe('Heartbeat', () => {
  it('pings the silent peers, spares the ones that spoke, terminates the ones that let a ping time out', () => {
    let dead = 0;
    let reported = 0;
    const hb = new Heartbeat({ intervalMs: 1000, timeoutMs: 500, metrics: { deadPeers: { inc: () => void dead++ } }, timer: false });
    const quiet = new FakeSocket();
    const answering = new FakeSocket();
    hb.track(quiet as unknown as WebSocket, () => reported++);
    hb.track(answering as unknown as WebSocket, () => reported++);
    const t0 = Math.ceil(performance.now()); // whole milliseconds: t0 + 1500 - (t0 + 1000) is exactly 500
    hb.sweep(t0 + 500); // nobody silent for an interval yet
    expect([quiet.pings, answering.pings]).toEqual([0, 0]);
    hb.sweep(t0 + 1000);
    expect([quiet.pings, answering.pings]).toEqual([1, 1]);
    answering.emit('pong');
    hb.sweep(t0 + 1400); // the ping is not late yet
    expect(quiet.terminated).toBe(false);
    hb.sweep(t0 + 1500); // late: overdue, judged at the next sweep (after the loop has read the sockets)
    expect(quiet.terminated).toBe(false);
    hb.sweep(t0 + 1600);
    expect(quiet.terminated).toBe(true);
    expect(answering.terminated).toBe(false);
    expect([dead, reported, hb.size]).toEqual([1, 1, 1]);
    hb.stop();
  });

  it('spares peers whose pong was read after a stall of this process: late pings are judged one sweep later', () => {
    let dead = 0;
    const hb = new Heartbeat({ intervalMs: 1000, timeoutMs: 500, metrics: { deadPeers: { inc: () => void dead++ } }, timer: false });
    const peers = [new FakeSocket(), new FakeSocket(), new FakeSocket()];
    for (const p of peers) hb.track(p as unknown as WebSocket, () => undefined);
    const t0 = Math.ceil(performance.now());
    hb.sweep(t0 + 1000); // all pinged
    // the process stalls for 5 s; their pongs wait in the socket buffers; the first sweep after the stall
    hb.sweep(t0 + 6000);
    expect(peers.map((p) => p.terminated)).toEqual([false, false, false]);
    // the event loop reads the sockets: two of them had answered
    peers[0]!.emit('pong');
    peers[1]!.emit('message');
    hb.sweep(t0 + 6100);
    expect(peers.map((p) => p.terminated)).toEqual([false, false, true]);
    expect(dead).toBe(1);
    hb.stop();
  });

  it('watches 10,000 idle sockets on one timer and one set of listeners, one sweep pinging each once', () => {
    // what keeps idle sockets cheap is structural (one timer, one pass over a map), not a time
    // measured on whatever machine runs the test
    const intervals = vi.spyOn(globalThis, 'setInterval');
    const hb = new Heartbeat({ intervalMs: 20_000, timeoutMs: 20_000, metrics: { deadPeers: { inc: () => undefined } } });
    try {
      const sockets = Array.from({ length: 10_000 }, () => new FakeSocket());
      for (const s of sockets) hb.track(s as unknown as WebSocket, () => undefined);
      expect(hb.size).toBe(10_000);
      expect(intervals).toHaveBeenCalledTimes(1);
      // and no closure per socket: they all share the same listeners
      for (const event of ['pong', 'ping', 'message', 'close'])
        expect(new Set(sockets.flatMap((s) => s.listeners(event))).size, event).toBe(1);
      hb.sweep(performance.now() + 20_000);
      expect(sockets.every((s) => s.pings === 1)).toBe(true);
      hb.sweep(performance.now() + 20_000); // a ping already awaited is not sent again
      expect(sockets.every((s) => s.pings === 1)).toBe(true);
    } finally {
      hb.stop();
      intervals.mockRestore();
    }
  });

  it('does nothing with an interval of 0 (heartbeats off)', () => {
    const hb = new Heartbeat({ intervalMs: 0, timeoutMs: 500, metrics: { deadPeers: { inc: () => undefined } } });
    hb.track(new FakeSocket() as unknown as WebSocket, () => undefined);
    expect(hb.size).toBe(0);
  });
});
