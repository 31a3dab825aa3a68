/** PromQL of the Node.js runtime dashboard, from prom-client's default metrics (per scrape job). */
import { matchVar, sumRate } from '../lib.ts';

const JOB = matchVar('job');

/** An event loop lag gauge (`p50`, `p99`, `max`, `mean`) by job. */
export function eventLoopLag(stat: 'p50' | 'p90' | 'p99' | 'max' | 'mean'): string {
  return `max by (job) (nodejs_eventloop_lag_${stat}_seconds{${JOB}})`;
}

/** V8 heap used, by job. */
export function heapUsed(): string {
  return `sum by (job) (nodejs_heap_size_used_bytes{${JOB}})`;
}

/** V8 heap size, by job. */
export function heapTotal(): string {
  return `sum by (job) (nodejs_heap_size_total_bytes{${JOB}})`;
}

/** Resident set size, by job. */
export function residentMemory(): string {
  return `sum by (job) (process_resident_memory_bytes{${JOB}})`;
}

/** Memory of C++ objects bound to JavaScript (buffers), by job. */
export function externalMemory(): string {
  return `sum by (job) (nodejs_external_memory_bytes{${JOB}})`;
}

/** Share of wall time spent in garbage collection, by job and GC kind. */
export function gcTimeRatio(): string {
  return sumRate('nodejs_gc_duration_seconds_sum', ['job', 'kind'], JOB);
}

/** Garbage collections per second, by job and kind. */
export function gcRate(): string {
  return sumRate('nodejs_gc_duration_seconds_count', ['job', 'kind'], JOB);
}

/** CPU used (cores), by job. */
export function cpu(): string {
  return sumRate('process_cpu_seconds_total', ['job'], JOB);
}

/** Active libuv handles (sockets, timers, …), by job. */
export function activeHandles(): string {
  return `sum by (job) (nodejs_active_handles{${JOB}})`;
}

/** Open file descriptors, by job. */
export function openFds(): string {
  return `sum by (job) (process_open_fds{${JOB}})`;
}
