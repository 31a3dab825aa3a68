/**
 * A WebSocket server scripted byte by byte (plain TCP), for clients that must cope with how a
 * server cuts its bytes: frames in the same write as the upgrade response, a connection destroyed
 * mid-turn. Each connection is handed to the next handler with its upgrade request.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';

/** A server text frame (unmasked). */
export function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const header =
    payload.length < 126 ? Buffer.from([0x81, payload.length]) : Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([header, payload]);
}

/** A server close frame with its code. */
export function closeFrame(code: number): Buffer {
  return Buffer.from([0x88, 2, code >> 8, code & 0xff]);
}

/** The 101 answer to a client's upgrade request. */
export function upgradeResponse(request: string): Buffer {
  const key = /sec-websocket-key: *(\S+)/i.exec(request)?.[1];
  if (!key) throw new Error(`not a WebSocket upgrade: ${request.slice(0, 200)}`);
  const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  return Buffer.from(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
}

export type ScriptedConnection = (requestLine: string, socket: net.Socket, request: string) => void;

/** Serves connections in turn with `handlers[i]`; answers its ws:// base URL and how to close it. */
export async function scriptedServer(handlers: ScriptedConnection[]): Promise<{ url: string; close: () => void }> {
  let n = 0;
  const server = net.createServer((socket) => {
    socket.once('data', (data) => {
      const request = String(data);
      handlers[n++]?.(request.split('\r\n')[0]!, socket, request);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `ws://127.0.0.1:${(server.address() as net.AddressInfo).port}`, close: () => void server.close() };
}
