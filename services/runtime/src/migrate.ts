/** `node services/runtime/src/migrate.ts`: applies the runtime's migrations and exits (the Helm chart's migration Job). */
import { fileURLToPath } from 'node:url';
import { readConfig, runMigrations } from '@codelab/service-kit';
import { runtimeSettings } from './config.ts';

const { dbUrl, logLevel } = readConfig('AGENT_RUNTIME', { dbUrl: runtimeSettings.dbUrl, logLevel: runtimeSettings.logLevel });
process.exitCode = await runMigrations({
  service: 'runtime',
  url: dbUrl,
  urlSetting: 'AGENT_RUNTIME__DB_URL',
  dir: fileURLToPath(new URL('./migrations', import.meta.url)),
  logLevel,
});
