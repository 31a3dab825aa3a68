/**
 * The database as a turn writes to it: each write runs in a transaction that first locks the
 * session row under the turn's lease (`Lease.fence`). A turn whose lease was taken over cannot
 * store a message or a tool call after the takeover: the write fails with LeaseLostError (the
 * turn is then aborted), and a takeover that comes while a write is in flight waits for its
 * commit, so the write is before it. Reads go to the pool as they are.
 *
 * A turn's most frequent write, a message of its own, carries the lease's condition itself
 * (`WriteFence`, store/sessions.ts `append`): the same guarantees in one statement and one commit
 * instead of four round trips (BEGIN, the fence's SELECT … FOR UPDATE, the write, COMMIT).
 */
import type { Database, Queryable } from '@codelab/service-kit';
import type { WriteFence } from '../store/sessions.ts';
import { LeaseLostError, type Lease } from './session-lease.ts';
import type { ConversationServices } from './turn-context.ts';

const READ = /^\s*(SELECT|SHOW)\b/i;

export function fencedDatabase(db: Database, lease: Pick<Lease, 'fence'>): Database {
  const transaction = <T>(fn: (tx: Queryable) => Promise<T>): Promise<T> =>
    db.transaction(async (tx) => {
      await lease.fence(tx);
      return fn(tx);
    });
  return {
    get pool() {
      return db.pool;
    },
    get embedded() {
      return db.embedded;
    },
    get embeddedEngine() {
      return db.embeddedEngine;
    },
    get target() {
      return db.target;
    },
    query: (text, params) => (READ.test(text) ? db.query(text, params) : transaction((tx) => tx.query(text, params))),
    transaction,
    ping: () => db.ping(),
    close: () => db.close(),
  };
}

/** The lease as one statement's own condition, run on the database itself. */
export function writeFence(db: Queryable, lease: Pick<Lease, 'owners' | 'held' | 'lose'>): WriteFence {
  return {
    db,
    owners: lease.owners,
    check: () => {
      if (!lease.held) throw new LeaseLostError();
    },
    refused: () => {
      lease.lose();
      throw new LeaseLostError();
    },
  };
}

/** The services a turn runs with: the same, but its stores write through `fencedDatabase` (or carry the fence: `writeFence`). */
export function fencedServices(
  services: ConversationServices,
  lease: Pick<Lease, 'fence' | 'owners' | 'held' | 'lose'>,
): ConversationServices {
  const db = fencedDatabase(services.db, lease);
  return { ...services, db, ...services.storesOn(db, writeFence(services.db, lease)) };
}
