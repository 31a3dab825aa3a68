/**
 * The fault suite's witness client against a scripted WebSocket server (plain TCP, so that the
 * server decides how the bytes are cut): it must keep every frame, also those that arrive in the
 * same read as the upgrade response, as a gateway's replay after `?last_seq=` can.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { scriptedServer as serve, textFrame, upgradeResponse, type ScriptedConnection } from '../../helpers/scripted-ws-server.ts';
import { WitnessConversation } from './witness.ts';

const token = (seq: number) => JSON.stringify({ type: 'assistant_message', token: `w${seq} `, is_final: false, seq });
const final = (seq: number) => JSON.stringify({ type: 'assistant_message', content: 'the answer', is_final: true, seq });

let close: (() => void) | undefined;
afterEach(() => close?.());

async function scriptedServer(handlers: ScriptedConnection[]): Promise<string> {
  const server = await serve(handlers);
  close = server.close;
  return server.url;
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
