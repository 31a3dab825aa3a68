/**
 * The auth command-line tool: `npm run auth -- <command> [options]` (see `--help`). It acts on the
 * database the platform uses, and says which on stderr (one line) before anything else:
 * AUTH_SERVICE__DB_URL when set; otherwise the data directory's embedded database
 * (`$CODELAB_DATA_DIR/pg`): the running platform's engine when one serves it (its URL is in the
 * lock file `pg.lock` beside it), else the CLI opens the engine itself for the time of the command.
 * It applies the migrations first.
 *
 * Exit codes: 0 done, 1 bad input (the message names the problem), 2 runtime failure (database).
 * Generated passwords and client secrets are printed once, on stdout; nothing else is secret.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import {
  ConfigError,
  readConfig,
  EmbeddedDatabaseBusyError,
  migrate,
  openDatabase,
  type Database,
  ServiceMetrics,
} from '@codelab/service-kit';
import { COMMANDS, UsageError, type CliIo, type Values } from './cli-commands.ts';
import { authSettings } from './config.ts';

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
    "The database is the platform's: AUTH_SERVICE__DB_URL when set, else the embedded one in $CODELAB_DATA_DIR/pg\n" +
    '(default ./data/pg), through the running platform when it runs; the first line on stderr says which.\n' +
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
    ({ values } = parseArgs({
      args: [...rest],
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
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
  try {
    db = await openDatabase({
      service: 'auth',
      url: config.dbUrl,
      urlSetting: 'AUTH_SERVICE__DB_URL',
      dataDir: config.dataDir,
      // The engine is the CLI's only for the time of the command: never offered to others.
      embeddedHolder: 'auth CLI',
      shareEmbedded: false,
      poolMax: 2,
      logger,
      metrics: new ServiceMetrics('auth-cli'),
    });
    io.stderr(`auth: ${databaseInUse(db)}\n`);
    await migrate(db, 'auth', MIGRATIONS_DIR, logger);
    await work(db);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`auth: ${err.message}\n`);
      return 1;
    }
    if (err instanceof EmbeddedDatabaseBusyError) {
      io.stderr(`auth: ${err.message}; or set AUTH_SERVICE__DB_URL to use a PostgreSQL server\n`);
      return 2;
    }
    io.stderr(`auth: ${name} failed: ${(err as Error).message || String(err)}\n`);
    return 2;
  } finally {
    await db?.close();
  }
}

/** A directory as the user would type it: relative to the working directory when under it. */
function shown(dir: string): string {
  const relative = path.relative(process.cwd(), dir);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : dir;
}

/** The line saying which database the command acts on (the URL without its password). */
function databaseInUse(db: Database): string {
  const engine = db.embeddedEngine;
  if (!engine) return `using the database of AUTH_SERVICE__DB_URL, ${db.target}`;
  const dir = engine.dir ? shown(engine.dir) : '(memory)';
  if (engine.servedBy) {
    return `using the embedded database of the running ${engine.servedBy.holder} (pid ${engine.servedBy.pid}, ${dir})`;
  }
  return `embedded database in ${dir} (the platform is not running)`;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks).toString('utf8');
}

// run as a program (through a symlinked checkout too: import.meta.url is the real path)
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const code = await runCli(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readStdin: () => readAll(process.stdin),
    env: process.env,
  });
  process.exitCode = code;
}
