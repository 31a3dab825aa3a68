/**
 * The chat load profile during a fault: the Node load driver (`npm run load -- chat --profile ci`)
 * through nginx, stopped like Ctrl-C when the fault's row is over; its summary gives the turns
 * attempted and failed and the frames it missed. Thresholds are reduced to one that cannot abort
 * the run: during a fault, failed turns are the figure to report, not a reason to stop the load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../../helpers/processes.ts';

export interface ChatLoadFigures {
  exitCode: number | null;
  conversations: number;
  turns: number;
  turnsFailed: number;
  framesMissed: number;
  framesOutOfOrder: number;
}

interface Summary {
  executor: { started: number };
  metrics: Record<string, { count?: number; value?: number; passes?: number; fails?: number } | undefined>;
}

export class ChatLoad {
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private output = '';
  private readonly out: string;

  constructor(out: string) {
    this.out = out;
  }

  async start(opts: { url: string; password: string }): Promise<void> {
    const thresholds = path.join(this.out, 'thresholds.json');
    await writeFile(thresholds, JSON.stringify({ chat: { chat_turns_failed: ['rate<=1'] } }));
    this.child = spawn(
      process.execPath,
      [
        'scripts/load.ts',
        'chat',
        '--profile',
        'ci',
        '--gateway',
        opts.url,
        '--auth',
        opts.url,
        '--ready-path',
        '/{target}-ready',
        '--out',
        this.out,
        '--thresholds',
        thresholds,
        '--duration-scale',
        '3', // a 45 s ramp to the profile's rate, then 3 minutes at it: stopped by `stop()` when the row is over
        '--graceful-stop',
        '5',
        '--no-progress',
      ],
      { cwd: REPO_ROOT, env: { ...process.env, LOAD_PASSWORD: opts.password }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child.stdout!.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-20_000)));
    this.child.stderr!.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-20_000)));
    this.exited = new Promise((resolve) => this.child!.once('exit', (code) => resolve(code)));
  }

  /** Stops the run (SIGINT: reports written, exit 105) and reads its summary. */
  async stop(): Promise<ChatLoadFigures> {
    this.child?.kill('SIGINT');
    const exitCode = await this.exited!;
    let summary: Summary;
    try {
      summary = JSON.parse(await readFile(path.join(this.out, 'summary.json'), 'utf8')) as Summary;
    } catch (err) {
      throw new Error(`the load driver left no summary (exit ${exitCode}): ${(err as Error).message}\n${this.output}`);
    }
    const m = summary.metrics;
    const turnsFailed = m.chat_turns_failed;
    return {
      exitCode,
      conversations: summary.executor.started,
      turns: turnsFailed?.count ?? 0,
      turnsFailed: turnsFailed?.passes ?? 0,
      framesMissed: m.chat_frames_missed?.count ?? 0,
      framesOutOfOrder: m.chat_frames_out_of_order?.count ?? 0,
    };
  }
}
