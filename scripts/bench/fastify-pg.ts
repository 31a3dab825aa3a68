/**
 * The second reference of `npm run bench:rest`: one fastify process with a pg pool answering the
 * list the gateway's `GET /api/v1/sessions?limit=20` ends in, with the very statements the runtime
 * runs for it (services/runtime/src/store/sessions.ts, `SessionStore.list` with the route's
 * defaults: active_only=true, offset=0, the default idle timeout of 3600 s): the page (one row more),
 * and the count when the list goes on past the page, prepared under names as the runtime's are (packages/service-kit/src/db.ts). No JWT, no
 * internal call, no telemetry: what fastify + pg doing the query directly costs.
 *
 *   PORT=… DATABASE_URL=postgres://… node scripts/bench/fastify-pg.ts
 *   GET /sessions?user=<owner_sub>&limit=20[&offset=0]
 */
import Fastify from 'fastify';
import pg from 'pg';

/** The runtime's default AGENT_RUNTIME__SESSION_IDLE_TIMEOUT (the bench's platform keeps it). */
const IDLE_SECONDS = 3600;
/** The runtime's OPEN_STATUSES (services/runtime/src/store/tool-calls.ts). */
const OPEN_LIST = `'queued', 'pending_approval', 'approved', 'awaiting_result'`;
/** The runtime's `activeRule(idleSeconds)`, character for character. */
const ACTIVE = `(sessions.is_active AND (
    sessions.last_activity > now() - ${IDLE_SECONDS} * interval '1 second'
    OR (sessions.lease_owner IS NOT NULL AND sessions.lease_until > now())
    OR EXISTS (SELECT 1 FROM tool_calls tc WHERE tc.session_id = sessions.id AND tc.status IN (${OPEN_LIST}))))`;
/** The runtime's SUMMARY_COLUMNS (the time as ISO text from PostgreSQL) and `is_active`. */
const COLUMNS = `id, title, current_agent, message_count,
  to_char(last_activity AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS last_activity, ${ACTIVE} AS is_active`;
const WHERE = `deleted_at IS NULL AND ${ACTIVE} AND owner_sub = $1`;
const PAGE_SQL = `SELECT ${COLUMNS} FROM sessions WHERE ${WHERE} ORDER BY sessions.last_activity DESC, id LIMIT $2 OFFSET $3`;
const COUNT_SQL = `SELECT count(*) AS total FROM sessions WHERE ${WHERE}`;

interface Row {
  id: string;
  title: string | null;
  current_agent: string;
  message_count: number;
  is_active: boolean;
  last_activity: string;
}

// generic plans for the prepared statements, as the platform's pools ask (packages/service-kit/src/db.ts)
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 16, options: '-c plan_cache_mode=force_generic_plan' });
pool.on('error', () => undefined); // an idle connection that breaks must not end the reference
const app = Fastify({ logger: false });
app.get('/health', async () => ({ status: 'ok' }));
app.get<{ Querystring: { user: string; limit: number; offset: number } }>(
  '/sessions',
  {
    schema: {
      querystring: {
        type: 'object',
        required: ['user'],
        properties: {
          user: { type: 'string', minLength: 1 },
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          offset: { type: 'integer', minimum: 0, default: 0 },
        },
      },
    },
  },
  async (request) => {
    const { user, limit, offset } = request.query;
    // as the runtime: one row more than the page, and a count only when the list goes on past it
    const page = await pool.query<Row>({ name: 'page', text: PAGE_SQL, values: [user, limit + 1, offset] });
    const rows = page.rows.slice(0, limit);
    const total =
      page.rows.length <= limit && (page.rows.length > 0 || offset === 0)
        ? offset + page.rows.length
        : Number((await pool.query<{ total: string }>({ name: 'count', text: COUNT_SQL, values: [user] })).rows[0]?.total ?? 0);
    return {
      sessions: rows,
      total,
      limit,
      offset,
    };
  },
);
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT || 3000) });
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.once(signal, () => void app.close().then(() => pool.end().finally(() => process.exit(0))));
