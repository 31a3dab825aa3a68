/**
 * A TCP front for the tests: each connection goes to the first target that accepts it, in the given
 * order (a load balancer failing over); with `delayMs`, what the client sends waits that long before
 * it goes on (a network's latency: a request is held once, chunks that arrive while it waits join it).
 */
import net from 'node:net';

export interface TcpProxyOptions {
  /** Milliseconds to hold each request (a new draw for each). */
  delayMs?: () => number;
}

export interface TcpProxy {
  url: string;
  /** Connections accepted so far. */
  connections(): number;
  /** Resets every open connection at once (a network fault, a restarted peer). */
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targets: string[], opts: TcpProxyOptions = {}): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const connectTo = (i: number, client: net.Socket): void => {
    if (i >= targets.length || client.destroyed) return void client.destroy();
    const { hostname, port } = new URL(targets[i]!);
    const upstream = net.connect(Number(port), hostname);
    const refused = (): void => connectTo(i + 1, client);
    upstream.once('error', refused);
    upstream.once('connect', () => {
      upstream.off('error', refused);
      sockets.add(upstream);
      upstream.once('close', () => sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      if (opts.delayMs) pipeDelayed(client, upstream, opts.delayMs);
      else client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  };
  let accepted = 0;
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    accepted++;
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    connectTo(0, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => accepted,
    cut: () => {
      for (const s of sockets) s.resetAndDestroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Passes what `from` sends on to `to` after a drawn delay, in order; an end waits for what is held. */
function pipeDelayed(from: net.Socket, to: net.Socket, delayMs: () => number): void {
  let held: Buffer[] | undefined;
  let ended = false;
  from.on('data', (chunk: Buffer) => {
    if (held) return void held.push(chunk);
    held = [chunk];
    setTimeout(() => {
      for (const c of held!) if (!to.destroyed) to.write(c);
      held = undefined;
      if (ended) to.end();
    }, delayMs());
  });
  from.on('end', () => {
    if (held) ended = true;
    else to.end();
  });
}
