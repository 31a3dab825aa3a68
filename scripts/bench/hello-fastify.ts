/**
 * The reference of `npm run bench:rest`: a bare fastify hello-world (no logger, no hooks, no
 * plugins), started as its own process like the services: `PORT=… node scripts/bench/hello-fastify.ts`.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT || 3000) });
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void app.close().then(() => process.exit(0)));
