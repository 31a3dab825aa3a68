/**
 * The fault suite's witness client against a scripted WebSocket server (plain TCP, so that the
 * server decides how the bytes are cut): it must keep every frame, also those that arrive in the
 * same read as the upgrade response, as a gateway's replay after `?last_seq=` can.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { WitnessConversation } from './witness.ts';

/** A server text frame (unmasked). */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const header =
    payload.length < 126 ? Buffer.from([0x81, payload.length]) : Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([header, payload]);
}

function upgradeResponse(request: string): Buffer {
  const key = /sec-websocket-key: *(\S+)/i.exec(request)?.[1];
  if (!key) throw new Error(`not a WebSocket upgrade: ${request.slice(0, 200)}`);
  const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  return Buffer.from(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
}

const token = (seq: number) => JSON.stringify({ type: 'assistant_message', token: `w${seq} `, is_final: false, seq });
const final = (seq: number) => JSON.stringify({ type: 'assistant_message', content: 'the answer', is_final: true, seq });

let server: net.Server | undefined;
afterEach(() => void server?.close());

/** Serves connections in turn with `handlers[i]`: the upgrade request's first line, the socket. */
async function scriptedServer(handlers: ((requestLine: string, socket: net.Socket, request: string) => void)[]): Promise<string> {
  let n = 0;
  server = net.createServer((socket) => {
    socket.once('data', (data) => {
      const request = String(data);
      handlers[n++]?.(request.split('\r\n')[0]!, socket, request);
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `ws://127.0.0.1:${(server!.address() as net.AddressInfo).port}`;
}

describe('witness conversation', () => {
  it('keeps the frames a resumed connection gets in the same read as its upgrade response; the turn ends with them', async () => {
    const requests: string[] = [];
    const url = await scriptedServer([
      // the first connection: the turn's first frames once the message came, then the connection dies (a killed gateway)
      (line, socket, request) => {
        requests.push(line);
        socket.write(upgradeResponse(request));
        socket.once('data', () => {
          socket.write(Buffer.concat([textFrame(token(1)), textFrame(token(2)), textFrame(token(3))]), () => socket.destroy());
        });
      },
      // the resumed one: the rest of the turn in the very write that completes the handshake
      (line, socket, request) => {
        requests.push(line);
        socket.write(Buffer.concat([upgradeResponse(request), textFrame(token(4)), textFrame(final(5))]));
      },
    ]);
    const c = new WitnessConversation(url, () => 'token');
    const t = await c.turn('hello', 20_000);
    c.close();
    expect(requests.map((l) => l.split(' ')[1]?.replace(/witness-[\w-]+/, 'ID'))).toEqual(['/api/v1/ws/ID', '/api/v1/ws/ID?last_seq=3']);
    expect({ outcome: t.outcome, connections: t.connections, detail: t.detail }).toEqual({
      outcome: 'assistant_message',
      connections: 2,
      detail: undefined,
    });
    expect(c.seqProblems()).toEqual({ duplicates: [], missing: [] });
    expect(c.frames.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(c.drops).toEqual([1006]);
  });
});
