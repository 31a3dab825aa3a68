/** The shared test helpers that other tests rely on to be right. */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePorts } from '../src/testing.ts';

describe('freePorts', () => {
  it('gives as many different ports as asked, each free to listen on', async () => {
    const ports = await freePorts(20);
    expect(ports).toHaveLength(20);
    expect(new Set(ports).size).toBe(20);
    const servers = ports.map(() => createServer());
    try {
      await Promise.all(
        servers.map((s, i) => new Promise<void>((resolve, reject) => s.once('error', reject).listen(ports[i], '127.0.0.1', resolve))),
      );
    } finally {
      await Promise.all(servers.map((s) => new Promise((resolve) => (s.listening ? s.close(resolve) : resolve(undefined)))));
    }
  });
});
