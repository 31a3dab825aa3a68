/**
 * boot: what every service's main.ts does, in the order that matters. Read and validate the config
 * (exit 1 naming the bad variables), start tracing before the app is built (its logger and Redis
 * client see that tracing is on), build the app (exit 1 if a dependency cannot be set up), then
 * listen and handle shutdown.
 *
 *   await boot('gateway', readGatewayConfig, () => import('./app.ts').then((m) => m.buildApp));
 *
 * `@codelab/service-kit/boot` is the kit's entry point for what a service loads before tracing
 * starts (its main.ts and config.ts): `boot` and the settings API. It loads none of the app's
 * libraries (fastify, pg, ioredis, undici, pino), which the package index does: a bad setting
 * exits before they load.
 */
import { loadConfigOrExit } from './config.ts';
import { startTracing, shutdownTracing } from './tracing.ts';

export { commonSettings, ConfigError, defineSettings, readConfig, setting } from './config.ts';
export type { SettingSpec } from './config.ts';
export { H2C_MAX_STREAMS } from './h2c.ts';

interface BootConfig {
  version: string;
  host: string;
  port: number;
  shutdownGraceSeconds: number;
}

export async function boot<C extends BootConfig>(
  name: string,
  readConfig: () => C,
  loadBuilder: () => Promise<(config: C) => Promise<import('./service.ts').Service>>,
): Promise<void> {
  const config = loadConfigOrExit(name, readConfig);
  await startTracing({ serviceName: name, serviceVersion: config.version });
  const [{ runService }, build] = await Promise.all([import('./run.ts'), loadBuilder()]);
  let service;
  try {
    service = await build(config);
  } catch (err) {
    process.stderr.write(`${name}: failed to start: ${(err as Error).stack ?? String(err)}\n`);
    await shutdownTracing();
    process.exit(1);
  }
  await runService(service, config);
}
