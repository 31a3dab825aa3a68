/**
 * `npm run bench:jwt`: what verifying the bearer token costs the gateway per request.
 *
 * 1. The verifier alone: a token seen for the first time (RS256 signature, claims, kid lookup in
 *    the cached JWKS, revocation check) and a token seen again (verified-token cache), against the
 *    bare RSA-SHA256 signature check of the same token measured in the same run.
 * 2. A REST read through the gateway (`GET /api/v1/sessions`: verification, runtime call,
 *    PostgreSQL) with authentication on, against the same stack with it off, in the same run.
 *
 *   BENCH_SECONDS=5 BENCH_DATABASE_URL=postgres://… npm run bench:jwt
 */
import { createVerify } from 'node:crypto';
import { startEmbeddedPostgres } from '@codelab/service-kit';
import { startStack } from '../../test/helpers/stack.ts';

const SECONDS = Number(process.env.BENCH_SECONDS || 4);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY || 16);

function timeLoop(fn: () => unknown, ms: number): number {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    fn();
    n++;
  }
  return n / (ms / 1000);
}

async function timeAsyncLoop(fn: () => Promise<unknown>, ms: number): Promise<number> {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    await fn();
    n++;
  }
  return n / (ms / 1000);
}

async function httpLoad(
  url: string,
  headers: Record<string, string>,
  seconds: number,
): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const res = await fetch(url, { headers });
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / seconds,
    p50: latencies[Math.floor(latencies.length * 0.5)]!,
    p99: latencies[Math.floor(latencies.length * 0.99)]!,
    errors,
  };
}

let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
let databaseUrl = process.env.BENCH_DATABASE_URL;
if (!databaseUrl) {
  embedded = await startEmbeddedPostgres(undefined, 24);
  databaseUrl = embedded.url;
}
const quiet = { GATEWAY__LOG_LEVEL: 'warn' };
const withAuth = await startStack({ databaseUrl, env: { gateway: quiet } });
const withoutAuth = await startStack({ databaseUrl, env: { gateway: { ...quiet, GATEWAY__USE_JWT_AUTH: 'false' } } });
try {
  const token = await withAuth.token();

  // 1. the verifier alone
  const { JwksCache } = await import('@codelab/gateway/jwks-cache');
  const { createJwtVerifier } = await import('@codelab/gateway/jwt-verifier');
  const { PeerClient, ServiceMetrics, silentLoggerForBench } = await (async () => {
    const kit = await import('@codelab/service-kit');
    const testing = await import('@codelab/service-kit/testing');
    return { PeerClient: kit.PeerClient, ServiceMetrics: kit.ServiceMetrics, silentLoggerForBench: testing.silentLogger };
  })();
  const { createGatewayMetrics } = await import('@codelab/gateway/metrics');
  const metrics = createGatewayMetrics(new ServiceMetrics('bench'));
  const jwks = new JwksCache({
    auth: new PeerClient({ peer: 'auth', baseUrl: withAuth.url.auth, metrics: new ServiceMetrics('bench2') }),
    metrics,
    logger: silentLoggerForBench(),
  });
  const verify = createJwtVerifier({ jwks, issuer: 'https://auth.codelab.local', audience: 'codelab-api', revoked: { has: () => false } });
  await verify(token);
  const jwk = ((await (await fetch(`${withAuth.url.auth}/.well-known/jwks.json`)).json()) as { keys: JsonWebKey[] }).keys[0]!;
  const { createPublicKey } = await import('node:crypto');
  const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
  const [h, p, s] = token.split('.') as [string, string, string];
  const signature = Buffer.from(s, 'base64url');
  const rawRate = timeLoop(() => createVerify('RSA-SHA256').update(`${h}.${p}`).verify(publicKey, signature), SECONDS * 500);
  // first sight of a token: signature and claims (distinct tokens signed with the auth key)
  const { importPKCS8, SignJWT, decodeJwt } = await import('jose');
  const { readFile } = await import('node:fs/promises');
  const signingKey = await importPKCS8(await readFile(`${withAuth.dataDir}/auth/keys/private_key.pem`, 'utf8'), 'RS256');
  const claims = decodeJwt(token);
  const kid = JSON.parse(Buffer.from(h, 'base64url').toString()).kid as string;
  const fresh = await Promise.all(
    Array.from({ length: 400 }, (_, i) =>
      new SignJWT({ ...claims, jti: `bench-${i}` }).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid }).sign(signingKey),
    ),
  );
  const t0 = performance.now();
  for (const t of fresh) await verify(t);
  const firstUs = ((performance.now() - t0) * 1000) / fresh.length;
  const cachedRate = await timeAsyncLoop(() => verify(token), SECONDS * 500);
  console.log(
    `token verification: first sight ${firstUs.toFixed(1)} µs (jose RS256 + claims) | again ${(1e6 / cachedRate).toFixed(2)} µs (verified-token cache) | ` +
      `bare RSA-SHA256 check ${(1e6 / rawRate).toFixed(1)} µs | first sight / bare: x${(firstUs / (1e6 / rawRate)).toFixed(1)}`,
  );

  // 2. a REST read through the gateway, with and without authentication
  const path = '/api/v1/sessions?limit=5';
  await httpLoad(`${withAuth.url.gateway}${path}`, { authorization: `Bearer ${token}` }, 1); // warm-up
  await httpLoad(`${withoutAuth.url.gateway}${path}`, {}, 1);
  const on = await httpLoad(`${withAuth.url.gateway}${path}`, { authorization: `Bearer ${token}` }, SECONDS);
  const off = await httpLoad(`${withoutAuth.url.gateway}${path}`, {}, SECONDS);
  console.log(`GET ${path} (${CONCURRENCY} concurrent, ${SECONDS}s each, database: ${embedded ? 'embedded' : 'BENCH_DATABASE_URL'})`);
  console.log(`  JWT on : ${on.rps.toFixed(0)} req/s, p50 ${on.p50.toFixed(2)} ms, p99 ${on.p99.toFixed(2)} ms, errors ${on.errors}`);
  console.log(`  JWT off: ${off.rps.toFixed(0)} req/s, p50 ${off.p50.toFixed(2)} ms, p99 ${off.p99.toFixed(2)} ms, errors ${off.errors}`);
  console.log(
    `  on / off: ${((on.rps / off.rps) * 100).toFixed(0)}% of the throughput; +${(1000 / on.rps - 1000 / off.rps).toFixed(3)} ms of single-process time per request`,
  );
} finally {
  await withAuth.close();
  await withoutAuth.close();
  await embedded?.stop();
}
