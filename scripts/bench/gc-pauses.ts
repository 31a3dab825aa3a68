/**
 * `npm run bench:gc -- <dir>`: the garbage collector's pauses of each service of a platform
 * benchmark run with `BENCH_NODE_ARGS=--trace-gc BENCH_SERVICE_LOGS=<dir>`: per service and kind
 * (Scavenge, Mark-Compact), how many, their mean, p99 and longest pause, how many paused the
 * event loop 10 ms or more, and their sum. A pause is a time no request of that service moves:
 * it falls on the time to first token of every turn that waits on it.
 *
 * Also how fast each service promotes into the old generation (the heap's growth from one scavenge
 * to the next, after its first 20 s): what it promotes, a full collection (Mark-Compact) must
 * collect later, and under load a full collection stalls every turn in flight for longer than its
 * pause (bench:ttft's open rounds).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pct } from './timing.ts';

// `[pid:0x…]   62693 ms: Scavenge 103.2 (133.3) -> 82.8 (136.3) MB, pooled: 0.0 MB, 16.00 / 0.06 ms (…`
const GC_LINE =
  /\bms: (Scavenge|Minor Mark-Sweep|(?:Incremental )?Mark-Compact|Mark-Sweep)\b[^,]*MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/;

// the heap before and after: `   62693 ms: Scavenge 103.2 (133.3) -> 82.8 (136.3) MB`
const HEAP = /\b(\d+) ms: \S+(?: \S+)*? ([\d.]+) \([\d.]+\) -> ([\d.]+) \(/;

const dir = process.argv[2];
if (!dir) {
  console.error(
    'usage: node scripts/bench/gc-pauses.ts <dir written with BENCH_SERVICE_LOGS, services run with BENCH_NODE_ARGS=--trace-gc>',
  );
  process.exit(2);
}
const logs = readdirSync(dir).filter((f) => f.endsWith('.log'));
let found = 0;
for (const file of logs.sort()) {
  const pauses = new Map<string, number[]>();
  const promoted = { mb: 0, fromMs: NaN, toMs: NaN, after: NaN };
  for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
    const m = GC_LINE.exec(line);
    if (!m) continue;
    const kind = m[1]!.replace('Incremental ', '');
    pauses.set(kind, [...(pauses.get(kind) ?? []), Number(m[2])]);
    const heap = HEAP.exec(line);
    if (!heap) continue;
    const [atMs, after] = [Number(heap[1]), Number(heap[3])];
    if (kind === 'Scavenge' && atMs >= 20_000 && Number.isFinite(promoted.after)) {
      promoted.mb += after - promoted.after;
      if (Number.isNaN(promoted.fromMs)) promoted.fromMs = atMs;
      promoted.toMs = atMs;
    }
    promoted.after = after;
  }
  if (!pauses.size) continue;
  found++;
  const seconds = (promoted.toMs - promoted.fromMs) / 1000;
  console.log(
    `${path.basename(file, '.log')}:${seconds > 0 ? ` promotes ${(promoted.mb / seconds).toFixed(2)} MB/s into the old generation (over ${seconds.toFixed(0)} s)` : ''}`,
  );
  for (const [kind, ms] of pauses) {
    const sum = ms.reduce((a, b) => a + b, 0);
    console.log(
      `  ${kind.padEnd(13)} ${String(ms.length).padStart(5)} pauses, mean ${(sum / ms.length).toFixed(2)} ms, p99 ${pct(ms, 99).toFixed(2)} ms, ` +
        `max ${Math.max(...ms).toFixed(2)} ms, ${ms.filter((p) => p >= 10).length} of 10 ms or more; ${(sum / 1000).toFixed(2)} s in all`,
    );
  }
}
if (!found) {
  console.error(
    `${dir}: no --trace-gc lines in its .log files (run the benchmark with BENCH_NODE_ARGS=--trace-gc BENCH_SERVICE_LOGS=${dir})`,
  );
  process.exit(1);
}
