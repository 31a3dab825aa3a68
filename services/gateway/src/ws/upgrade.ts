/**
 * What an open WebSocket keeps of its HTTP upgrade: the caller's logger, nothing else.
 *
 * @fastify/websocket routes the upgrade through fastify with a stand-in ServerResponse assigned to
 * the raw socket (`socket._httpMessage`), and adds an 'error' listener to the WebSocket closing over
 * the fastify request and reply. Both live as long as the socket, and with them the
 * IncomingMessage, its headers (the bearer token among them), the request's logger and ids and the
 * upgrade's head buffer: about 5 KiB of every idle connection. Once the handler has read what it
 * needs of the request, `releaseUpgrade` lets all of that go: the response is detached from the
 * socket (as node's HTTP server does when a response ends; nothing is written to it after the 101
 * and nothing waits for its 'close'), and the plugin's error listener is replaced by one doing
 * what it did (its default error handler: the error logged, the socket terminated) that holds
 * only the logger.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { endServerSpan } from '@codelab/service-kit';
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';

/** Called in the WebSocket handler, before anything else listens to the socket's errors. */
export function releaseUpgrade(socket: WebSocket, request: FastifyRequest): void {
  // the upgrade request ends here, with its 101 (its span is linked from each message's span)
  endServerSpan(request.serverSpan, 101);
  const raw = request.raw.socket as Socket & { _httpMessage?: ServerResponse | null };
  const response = raw?._httpMessage;
  if (response && response.socket === raw) response.detachSocket(raw);
  for (const listener of socket.listeners('error')) socket.off('error', listener as (err: Error) => void);
  terminateOnError(socket, request.log);
}

/** Kept apart from `releaseUpgrade` so the listener's closure holds the logger and the socket only. */
function terminateOnError(socket: WebSocket, log: FastifyBaseLogger): void {
  socket.on('error', (err: Error) => {
    log.error(err);
    socket.terminate();
  });
}
