/**
 * The session lease on the run's PostgreSQL: one holder however many take at once (several
 * "instances", each its own SessionLeases and pool), expiry when a holder stops renewing, and the
 * fence that keeps a holder which lost the lease from writing after the taker. A holder that
 * "pauses" is simulated by a database whose queries fail while paused (its renewals do not
 * reach the row); nothing waits for a fixed time: takers wait for the lease, tests for conditions.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { migrate, openDatabase, ServiceMetrics, type Database } from '@codelab/service-kit';
import { silentLogger } from '@codelab/service-kit/testing';
import { createRuntimeMetrics } from '../../src/metrics.ts';
import { SessionStore } from '../../src/store/sessions.ts';
import { fencedDatabase, writeFence } from '../../src/turn/fenced-db.ts';
import {
  LeaseLostError,
  SessionBusyError,
  SessionLeases,
  type Lease,
  type SessionLeasesOptions,
  type TakenOver,
} from '../../src/turn/session-lease.ts';

const MIGRATIONS = fileURLToPath(new URL('../../src/migrations', import.meta.url));

const open = (service = 'lease-test', poolMax = 10): Promise<Database> =>
  openDatabase({ service, url: inject('databaseUrl'), poolMax, logger: silentLogger(), metrics: new ServiceMetrics('test') });

/** A database whose queries fail while `paused` (the holder's process stopped, or is cut off). */
function pausable(db: Database): { db: Database; pause: () => void; resume: () => void } {
  let paused = false;
  const gate = (): void => {
    if (paused) throw new Error('paused');
  };
  const wrapped: Database = {
    ...db,
    query: async (text, params) => {
      gate();
      return db.query(text, params);
    },
    transaction: async (fn) => {
      gate();
      return db.transaction(fn);
    },
  };
  return { db: wrapped, pause: () => (paused = true), resume: () => (paused = false) };
}

/** A refusal with SessionBusyError is no lease; anything else fails the test. */
const busyIsUndefined = (err: unknown): undefined => {
  if (err instanceof SessionBusyError) return undefined;
  throw err;
};

const leasesOn = (db: Database, opts: Partial<SessionLeasesOptions> = {}): SessionLeases =>
  new SessionLeases(db, { ttlMs: 60_000, metrics: createRuntimeMetrics(new ServiceMetrics('test')), ...opts });

describe('SessionLeases', () => {
  const dbs: Database[] = [];
  let db: Database;
  beforeAll(async () => {
    db = await open();
    dbs.push(db);
    await migrate(db, 'runtime', MIGRATIONS, silentLogger());
  });
  afterAll(async () => {
    for (const d of dbs) await d.close();
  });

  const newSession = async (): Promise<string> => {
    const id = `lease-${randomUUID()}`;
    await db.query('INSERT INTO sessions (id, owner_sub) VALUES ($1, $2)', [id, 'lease-test']);
    return id;
  };
  type LeaseRow = { lease_owner: string | null; lease_until: Date | null; frame_seq: string };
  const row = async (id: string): Promise<LeaseRow> =>
    (await db.query<LeaseRow>('SELECT lease_owner, lease_until, frame_seq FROM sessions WHERE id = $1', [id])).rows[0]!;
  const lapse = (id: string): Promise<unknown> =>
    db.query(`UPDATE sessions SET lease_until = now() - interval '1 second' WHERE id = $1`, [id]);

  it('names the holding instance by its host in lease_owner, so an operator can tell which runtime holds a session', async () => {
    const sessionId = await newSession();
    const leases = leasesOn(db);
    const lease = (await leases.tryAcquire(sessionId, undefined, { turn: true }))!;
    const owner = (await row(sessionId)).lease_owner!;
    expect(owner.startsWith(`${hostname().replace(/:/g, '-')}-`)).toBe(true);
    expect(owner.startsWith(leases.instance)).toBe(true);
    expect(owner).toMatch(/:turn:\d+$/);
    await lease.release();
  });

  describe('under contention', () => {
    it('gives a free session to exactly one of many concurrent takers on three instances', async () => {
      const instances = await Promise.all([open(), open(), open()]);
      dbs.push(...instances);
      const leases = instances.map((d) => leasesOn(d));
      for (let round = 0; round < 5; round++) {
        const sessionId = await newSession();
        const attempts = leases.flatMap((l) => [
          ...Array.from({ length: 6 }, () => l.tryAcquire(sessionId, undefined, { turn: true })),
          ...Array.from({ length: 6 }, () => l.acquire(sessionId, 0, { turn: true }).catch(busyIsUndefined)),
        ]);
        const won = (await Promise.all(attempts)).filter((l): l is Lease => l !== undefined);
        expect(won).toHaveLength(1);
        expect((await row(sessionId)).lease_owner).toMatch(/:turn:0$/);
        await won[0]!.release();
        expect(await row(sessionId)).toMatchObject({ lease_owner: null, lease_until: null });
      }
    });

    it('lets waiters in one at a time as each holder releases, never two holders at once', async () => {
      const instances = await Promise.all([open(), open()]);
      dbs.push(...instances);
      const leases = instances.map((d) => leasesOn(d));
      const sessionId = await newSession();
      let inside = 0;
      let most = 0;
      let served = 0;
      await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          const lease = await leases[i % 2]!.acquire(sessionId, 120_000, { turn: true });
          inside++;
          most = Math.max(most, inside);
          await db.query('SELECT 1'); // a turn's work: others get a chance to slip in if they could
          inside--;
          served++;
          await lease.release();
        }),
      );
      expect(served).toBe(8);
      expect(most).toBe(1);
    });
  });

  describe('expiry', () => {
    it('lets the next taker in once a holder that stopped renewing lapses; the holder then finds its lease lost', async () => {
      const holderDb = pausable(db);
      const holderLeases = leasesOn(holderDb.db, { ttlMs: 300 });
      const takenOver: TakenOver[] = [];
      const takerLeases = leasesOn(db, {
        onTakeover: async (_sessionId, prev) => {
          takenOver.push(prev);
          return prev.frameSeq + 1; // the closing frame of the dead turn
        },
      });
      const sessionId = await newSession();
      const holder = (await holderLeases.tryAcquire(sessionId, undefined, { turn: true }))!;
      expect(holder.held).toBe(true);
      holderDb.pause();
      // the taker waits (polling the row) until the holder's lease lapses by itself
      const taker = await takerLeases.acquire(sessionId, 120_000, { turn: true });
      expect(takenOver).toEqual([{ frameSeq: 0, turnBase: 0, alreadyClosed: false, token: taker.token }]);
      expect(BigInt(taker.token)).toBeGreaterThan(BigInt(holder.token));
      expect((await row(sessionId)).lease_owner).toMatch(/:turn:1$/); // renamed after the closing frame
      holderDb.resume();
      // the holder's next renewal finds another owner
      await expect.poll(() => holder.held, { timeout: 30_000 }).toBe(false);
      expect(holder.lost.aborted).toBe(true);
      expect(holder.lost.reason).toBeInstanceOf(LeaseLostError);
      await expect(db.transaction((tx) => holder.fence(tx))).rejects.toBeInstanceOf(LeaseLostError);
      // giving up a lost lease leaves the taker's alone
      await holder.release(5);
      expect((await row(sessionId)).lease_owner).toMatch(/:turn:1$/);
      await taker.release(3);
      expect(await row(sessionId)).toMatchObject({ lease_owner: null, frame_seq: '3' });
    });

    it('renews a held lease: its lease_until moves forward while the holder lives', async () => {
      let renewals = 0;
      const leases = leasesOn(db, { ttlMs: 300, onRenew: () => renewals++ });
      const sessionId = await newSession();
      const lease = (await leases.tryAcquire(sessionId))!;
      const before = (await row(sessionId)).lease_until!;
      await expect.poll(() => renewals, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
      const after = (await row(sessionId)).lease_until!;
      expect(after.getTime()).toBeGreaterThan(before.getTime());
      await lease.release();
    });

    it('hands a lapsed lease that nobody took back to its holder at the next renewal', async () => {
      const leases = leasesOn(db, { ttlMs: 300 });
      const sessionId = await newSession();
      const lease = (await leases.tryAcquire(sessionId, undefined, { turn: true }))!;
      await lapse(sessionId);
      const live = async (): Promise<boolean> =>
        (await db.query<{ live: boolean }>('SELECT lease_until > now() AS live FROM sessions WHERE id = $1', [sessionId])).rows[0]!.live;
      await expect.poll(live, { timeout: 30_000 }).toBe(true);
      expect(lease.held).toBe(true);
      await expect(db.transaction((tx) => lease.fence(tx))).resolves.toBeUndefined();
      await lease.release();
    });
  });

  describe('fence', () => {
    it('refuses a write under a lease that was taken over, and the lease is then lost', async () => {
      const leases = leasesOn(db);
      const sessionId = await newSession();
      const lease = (await leases.tryAcquire(sessionId, undefined, { turn: true }))!;
      await expect(db.transaction((tx) => lease.fence(tx))).resolves.toBeUndefined();
      await db.query(`UPDATE sessions SET lease_owner = 'thief:00000000' WHERE id = $1`, [sessionId]);
      await expect(db.transaction((tx) => lease.fence(tx))).rejects.toBeInstanceOf(LeaseLostError);
      expect(lease.held).toBe(false);
      expect(lease.lost.reason).toBeInstanceOf(LeaseLostError);
      // and a frame number past the reservation cannot be reserved either
      const reserving = leasesOn(db, { reserveSeqs: 10 });
      const other = await newSession();
      const r = (await reserving.tryAcquire(other, undefined, { turn: true }))!;
      await db.query(`UPDATE sessions SET lease_owner = 'thief:00000000' WHERE id = $1`, [other]);
      expect(r.ensureSeq(5)).toBeUndefined();
      await expect(r.ensureSeq(11)).rejects.toBeInstanceOf(LeaseLostError);
      expect(r.held).toBe(false);
    });

    it('still matches the lease after a rebase renamed its owner', async () => {
      const leases = leasesOn(db);
      const sessionId = await newSession();
      const lease = (await leases.tryAcquire(sessionId, undefined, { turn: true }))!;
      await lease.rebase(7);
      expect((await row(sessionId)).lease_owner).toMatch(/:turn:7$/);
      await expect(db.transaction((tx) => lease.fence(tx))).resolves.toBeUndefined();
      expect(lease.held).toBe(true);
      await lease.release(9);
      expect(await row(sessionId)).toMatchObject({ lease_owner: null, frame_seq: '9' });
    });

    it("carries itself in a turn's message append: one statement, no transaction; refused after a takeover, nothing stored", async () => {
      const leases = leasesOn(db);
      const sessionId = await newSession();
      const lease = (await leases.tryAcquire(sessionId, undefined, { turn: true }))!;
      await lease.rebase(3); // the owner's `:turn:<seq>` suffix may change during the turn: still this lease's
      let statements = 0;
      let transactions = 0;
      const counted: Database = {
        ...db,
        query: (text, params) => {
          statements++;
          return db.query(text, params);
        },
        transaction: (fn) => {
          transactions++;
          return db.transaction(fn);
        },
      };
      const store = new SessionStore(fencedDatabase(counted, lease), { fence: writeFence(counted, lease) });
      await expect(store.append(sessionId, { role: 'user', content: 'under the lease' })).resolves.toMatchObject({ seq: 1 });
      expect({ statements, transactions }).toEqual({ statements: 1, transactions: 0 });

      await db.query(`UPDATE sessions SET lease_owner = 'thief:00000000' WHERE id = $1`, [sessionId]);
      await expect(store.append(sessionId, { role: 'assistant', content: 'after the takeover' })).rejects.toBeInstanceOf(LeaseLostError);
      expect(lease.held).toBe(false);
      // known lost now: the next write does not even reach the database
      statements = 0;
      await expect(store.append(sessionId, { role: 'assistant', content: 'later still' })).rejects.toBeInstanceOf(LeaseLostError);
      expect(statements).toBe(0);
      const { rows } = await db.query<{ content: string; message_count: number }>(
        'SELECT m.content, s.message_count FROM messages m JOIN sessions s ON s.id = m.session_id WHERE m.session_id = $1',
        [sessionId],
      );
      expect(rows).toEqual([{ content: 'under the lease', message_count: 1 }]);
    });

    it("stores a turn's user message in the statement that takes the lease, unless a tool call waits for an answer or the session is busy", async () => {
      const leases = leasesOn(db);
      let statements = 0;
      const counted = leasesOn({
        ...db,
        query: (text, params) => {
          statements++;
          return db.query(text, params);
        },
      } as Database);
      type Stored = { message_count: number; title: string | null; messages: { role: string; content: string; seq: number }[] };
      const stored = async (id: string): Promise<Stored> => {
        const s = (await db.query<Stored>('SELECT message_count, title FROM sessions WHERE id = $1', [id])).rows[0]!;
        const m = await db.query<{ role: string; content: string; seq: number }>(
          'SELECT role, content, seq FROM messages WHERE session_id = $1 ORDER BY seq',
          [id],
        );
        return { message_count: s.message_count, title: s.title, messages: m.rows };
      };

      const sessionId = await newSession();
      const lease = (await counted.tryAcquire(sessionId, undefined, { turn: true, userMessage: '  fix the build  ' }))!;
      expect(statements).toBe(1);
      expect(lease.session.message_stored).toBe(true);
      expect(await stored(sessionId)).toEqual({
        message_count: 1,
        title: 'fix the build',
        messages: [{ role: 'user', content: '  fix the build  ', seq: 1 }],
      });
      // busy: nothing taken, nothing stored
      await expect(leases.acquire(sessionId, 0, { turn: true, userMessage: 'too early' }).catch(busyIsUndefined)).resolves.toBeUndefined();
      expect((await stored(sessionId)).messages).toHaveLength(1);
      await lease.release();

      // a call waits for the IDE: the message is left to the turn (it answers the call as superseded first)
      await db.query(
        `INSERT INTO tool_calls (session_id, call_id, batch, position, agent, tool_name, arguments, status)
         VALUES ($1, 'call-1', $2, 0, 'coder', 'read_file', '{}', 'awaiting_result')`,
        [sessionId, randomUUID()],
      );
      const next = (await leases.tryAcquire(sessionId, undefined, { turn: true, userMessage: 'second' }))!;
      expect(next.session).toMatchObject({ message_stored: false, open_tool_calls: 1 });
      expect(await stored(sessionId)).toMatchObject({ message_count: 1, title: 'fix the build' });
      await next.release();
    });

    it("ends a turn in its answer's statement: stored, the session freed with the final frame, the queued rows written, the lease done", async () => {
      const leases = leasesOn(db);
      const sessionId = await newSession();
      const lease = (await leases.tryAcquire(sessionId, undefined, { turn: true }))!;
      const store = new SessionStore(fencedDatabase(db, lease), { fence: writeFence(db, lease) });
      const frame = JSON.stringify({ type: 'assistant_message', content: 'done', is_final: true, seq: 4 });
      let written = 0;
      const rows = {
        ctes: (offset: number) => ({ sql: `side AS (SELECT $${offset + 1}::int AS n)`, params: [7] }),
        written: () => written++,
        failed: () => expect.unreachable('the statement committed'),
      };
      await store.append(sessionId, { role: 'assistant', content: 'done' }, undefined, {
        frameSeq: lease.releaseSeq(4),
        finalFrame: frame,
        rows,
      });
      lease.released();
      expect(written).toBe(1);
      const { rows: got } = await db.query(
        'SELECT lease_owner, lease_until, frame_seq, final_frame, message_count FROM sessions WHERE id = $1',
        [sessionId],
      );
      expect(got[0]).toEqual({ lease_owner: null, lease_until: null, frame_seq: '4', final_frame: frame, message_count: 1 });
      expect(await leases.finalFrame(sessionId, 4)).toBe(frame);
      expect(await leases.finalFrame(sessionId, 5)).toBeUndefined();
      // nothing is lost by the lease any more, and its release does nothing (the next holder is not touched)
      const next = (await leases.tryAcquire(sessionId, undefined, { turn: true }))!;
      lease.lose();
      expect(lease.held).toBe(true);
      await lease.release();
      expect((await row(sessionId)).lease_owner).not.toBeNull();
      await next.release();
    });

    it('tells a deleted session (an error) from a lost lease in a one-statement append', async () => {
      const leases = leasesOn(db);
      const sessionId = await newSession();
      const lease = (await leases.tryAcquire(sessionId, undefined, { turn: true }))!;
      const store = new SessionStore(fencedDatabase(db, lease), { fence: writeFence(db, lease) });
      await db.query('UPDATE sessions SET deleted_at = now() WHERE id = $1', [sessionId]);
      await expect(store.append(sessionId, { role: 'user', content: 'x' })).rejects.toThrow(`session ${sessionId} not found`);
      expect(lease.held).toBe(true);
      await lease.release();
    });

    // (the embedded engine runs one transaction at a time: the taker could not even start)
    const onServer = it.skipIf(inject('databaseKind') === 'embedded');
    onServer('orders a write in flight before a takeover that comes meanwhile: the taker waits for its commit', async () => {
      const holderDb = pausable(db);
      const holderLeases = leasesOn(holderDb.db);
      const app = `lease-taker-${randomUUID().slice(0, 8)}`;
      const takerDb = await open(app, 2);
      dbs.push(takerDb);
      const messagesAtTakeover: number[] = [];
      const takerLeases = leasesOn(takerDb, {
        onTakeover: async (sessionId, prev) => {
          const { rows } = await takerDb.query<{ n: string }>('SELECT count(*) AS n FROM messages WHERE session_id = $1', [sessionId]);
          messagesAtTakeover.push(Number(rows[0]!.n));
          return prev.frameSeq + 1;
        },
      });
      const store = new SessionStore(db);
      const sessionId = await newSession();
      const holder = (await holderLeases.tryAcquire(sessionId, undefined, { turn: true }))!;
      holderDb.pause(); // no more renewals: the lease lapses (made to lapse now)
      await lapse(sessionId);
      let taking: Promise<Lease> | undefined;
      await db.transaction(async (tx) => {
        await holder.fence(tx); // the holder still holds the row: its write goes ahead, and locks the row
        taking = takerLeases.acquire(sessionId, 120_000, { turn: true });
        // the taker's conditional UPDATE waits for this transaction
        const waiting = async (): Promise<number> =>
          (
            await db.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
              [`codelab-${app}`],
            )
          ).rows[0]!.n;
        await expect.poll(waiting, { timeout: 30_000 }).toBe(1);
        await store.append(sessionId, { role: 'assistant', content: 'written before the takeover' }, tx);
      });
      const taker = await taking!;
      expect(messagesAtTakeover).toEqual([1]);
      holderDb.resume();
      await expect(db.transaction((tx) => holder.fence(tx))).rejects.toBeInstanceOf(LeaseLostError);
      await taker.release();
    });
  });
});
