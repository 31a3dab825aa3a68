/**
 * The auth command-line tool: `npm run auth -- <command> [options]` (see `--help`). It reads the
 * service's own settings (AUTH_SERVICE__DB_URL, CODELAB_DATA_DIR: the same database as the service,
 * the embedded one under the data directory when no URL is set) and applies the migrations first.
 *
 * Exit codes: 0 done, 1 bad input (the message names the problem), 2 runtime failure (database).
 * Generated passwords and client secrets are printed once, on stdout; nothing else is secret.
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, readConfig } from '@codelab/service-kit/config';
import { migrate, openDatabase, type Database } from '@codelab/service-kit/db';
import { ServiceMetrics } from '@codelab/service-kit/metrics';
import { COMMANDS, UsageError, type CliIo, type Values } from './cli-commands.ts';
import { authSettings } from './config.ts';
import { acquireEmbeddedLock, type EmbeddedLock } from './embedded-lock.ts';

export { UsageError, type CliIo } from './cli-commands.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url));

/** The CLI's settings: the service's own specs, only those it needs (no internal key). */
function readCliConfig(env: NodeJS.ProcessEnv) {
  const { dbUrl, dataDir, logLevel } = authSettings;
  return readConfig('AUTH_SERVICE', { dbUrl, dataDir, logLevel }, env);
}

function usage(): string {
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage}\n      ${c.summary}`);
  return (
    'usage: npm run auth -- <command> [options]\n\n' +
    `commands:\n${lines.join('\n')}\n\n` +
    "The database is the service's: AUTH_SERVICE__DB_URL, or the embedded one under CODELAB_DATA_DIR (stop the service first).\n" +
    'Passwords: at least 12 characters; prefer --password-stdin to keep them out of the shell history.\n' +
    'Exit codes: 0 done, 1 bad input, 2 runtime failure.\n'
  );
}

/** Runs one CLI invocation; returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const help = name !== undefined;
    (help ? io.stdout : io.stderr)(usage());
    return help ? 0 : 1;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    io.stderr(`auth: unknown command '${name}'\n\n${usage()}`);
    return 1;
  }
  let values: Values;
  try {
    ({ values } = parseArgs({ args: [...rest], options: { ...command.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
  } catch (err) {
    io.stderr(`auth: ${(err as Error).message}\nusage: npm run auth -- ${command.usage}\n`);
    return 1;
  }
  if (values.help) {
    io.stdout(`usage: npm run auth -- ${command.usage}\n  ${command.summary}\n`);
    return 0;
  }

  let config;
  let work: (db: Database) => Promise<void>;
  try {
    config = readCliConfig(io.env);
    work = await command.prepare(values, io);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      io.stderr(`auth: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const logger = pino({ level: 'warn' }, pino.destination(2));
  let db: Database | undefined;
  let lock: EmbeddedLock | undefined;
  try {
    if (!config.dbUrl) lock = await acquireEmbeddedLock(config.dataDir, 'auth CLI');
    db = await openDatabase({
      service: 'auth',
      url: config.dbUrl,
      embeddedDataDir: path.join(config.dataDir, 'auth', 'pg'),
      poolMax: 2,
      logger,
      metrics: new ServiceMetrics('auth-cli'),
    });
    await migrate(db, 'auth', MIGRATIONS_DIR, logger);
    await work(db);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`auth: ${err.message}\n`);
      return 1;
    }
    io.stderr(`auth: ${name} failed: ${(err as Error).message || String(err)}\n`);
    return 2;
  } finally {
    await db?.close();
    await lock?.release();
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks).toString('utf8');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const code = await runCli(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readStdin: () => readAll(process.stdin),
    env: process.env,
  });
  process.exitCode = code;
}
