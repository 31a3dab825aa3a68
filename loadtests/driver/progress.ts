/**
 * The live progress line on stderr: elapsed/total, the target rate now, iterations started and
 * dropped, busy VUs, the p95 of the scenario's key latency and its failures. Rewritten in place
 * every second on a TTY; a plain line every few seconds otherwise (CI logs).
 */
import type { ExecutorState, Schedule } from './arrival.ts';
import type { Registry } from './metrics.ts';

export interface ProgressSource {
  label: string;
  schedule: Schedule;
  state: ExecutorState;
  registry: Registry;
  /** Metric whose p95 is shown. */
  latencyMetric: string;
  /** Rate metric whose non-zero samples are failures. */
  errorMetric: string;
}

const clock = (s: number): string => {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return `${h ? `${h}:` : ''}${String(m).padStart(h ? 2 : 1, '0')}:${String(sec).padStart(2, '0')}`;
};

const fmtMs = (ms: number): string =>
  ms >= 10_000 ? `${(ms / 1000).toFixed(1)}s` : ms >= 100 ? `${Math.round(ms)}ms` : `${ms.toFixed(1)}ms`;

export function progressLine(src: ProgressSource, elapsed: number): string {
  const { state, registry, schedule } = src;
  const rate = schedule.rateAt(Math.min(elapsed, schedule.duration));
  const lat = registry.aggregate(src.latencyMetric, 'p', 95);
  const err = registry.aggregate(src.errorMetric, 'rate');
  const failed = Math.round(err.value * err.samples);
  const phase = elapsed > schedule.duration ? ' (graceful stop)' : '';
  return [
    `${src.label} ${clock(elapsed)}/${clock(schedule.duration)}${phase}`,
    `target ${rate.toFixed(2)}/s`,
    `started ${state.started}`,
    `dropped ${state.dropped}`,
    `VUs ${state.busy}/${state.allocated}`,
    `p95 ${src.latencyMetric} ${lat.samples ? fmtMs(lat.value) : '-'}`,
    `${src.errorMetric} ${failed}/${err.samples}${err.samples ? ` (${(err.value * 100).toFixed(1)}%)` : ''}`,
  ].join('  ');
}

export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private lastPlain = -Infinity;
  private wroteInPlace = false;

  private readonly src: ProgressSource;
  private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  private readonly plainEverySeconds: number;

  constructor(src: ProgressSource, out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }, plainEverySeconds = 5) {
    this.src = src;
    this.out = out;
    this.plainEverySeconds = plainEverySeconds;
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  private tick(final = false): void {
    const elapsed = this.src.registry.elapsed();
    const line = progressLine(this.src, elapsed);
    if (this.out.isTTY) {
      const width = this.out.columns ?? 160;
      this.out.write(`\r\x1b[2K${line.length > width - 1 ? `${line.slice(0, width - 2)}…` : line}${final ? '\n' : ''}`);
      this.wroteInPlace = !final;
    } else if (final || elapsed - this.lastPlain >= this.plainEverySeconds) {
      this.lastPlain = elapsed;
      this.out.write(`${line}\n`);
    }
  }

  /** Writes the last state and ends the line. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.tick(true);
    this.wroteInPlace = false;
  }

  /** Clears an in-place line before other output. */
  clear(): void {
    if (this.out.isTTY && this.wroteInPlace) this.out.write('\r\x1b[2K');
  }
}
