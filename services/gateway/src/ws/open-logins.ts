/**
 * The WebSockets open per login (the token family, `sid`, of the token they connected with). A
 * connection outlives its access token (an IDE keeps one socket for hours), but not its login: when
 * the auth service revokes the family (refresh-token reuse, revocation, a reset password or a
 * disabled account), the gateway's next poll of the revoked families closes those sockets with
 * 4401, so a revoked login stops working within GATEWAY__REVOCATION_POLL_INTERVAL everywhere.
 */
import type { WebSocket } from 'ws';
import { WS_CLOSE } from '@codelab/protocol';

export class OpenLogins {
  private readonly sockets = new Map<WebSocket, string>();
  /** One 'close' listener shared by every socket (`this` is the socket): no closure per connection. */
  private readonly untrack: (this: WebSocket) => void;

  constructor() {
    const sockets = this.sockets;
    this.untrack = function untrack(this: WebSocket): void {
      sockets.delete(this);
    };
  }

  /** Tracks `socket` until it closes; a token without a family is not tracked. */
  track(socket: WebSocket, familyId: string | undefined): void {
    if (!familyId) return;
    this.sockets.set(socket, familyId);
    socket.on('close', this.untrack); // a socket closes once: `on` spares the wrapper `once` makes
  }

  /** Closes (4401) every tracked socket whose login is revoked; returns how many. */
  closeRevoked(isRevoked: (familyId: string) => boolean): number {
    let closed = 0;
    for (const [socket, familyId] of this.sockets) {
      if (!isRevoked(familyId)) continue;
      this.sockets.delete(socket);
      socket.close(WS_CLOSE.UNAUTHORIZED, 'login revoked');
      closed++;
    }
    return closed;
  }
}
