/** `node services/auth/src/migrate.ts`: applies the auth service's migrations and exits (the Helm chart's migration Job). */
import { fileURLToPath } from 'node:url';
import { readConfig, runMigrations } from '@codelab/service-kit';
import { authSettings } from './config.ts';

const { dbUrl, logLevel } = readConfig('AUTH_SERVICE', { dbUrl: authSettings.dbUrl, logLevel: authSettings.logLevel });
process.exitCode = await runMigrations({
  service: 'auth',
  url: dbUrl,
  urlSetting: 'AUTH_SERVICE__DB_URL',
  dir: fileURLToPath(new URL('./migrations', import.meta.url)),
  logLevel,
});
