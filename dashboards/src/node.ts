/** Node.js runtime of every service: event loop lag, memory, garbage collection, CPU, handles (prom-client default metrics). */
import { RowBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { codelabDashboard, finish, jobVariable, timeseries, UNITS } from './lib.ts';
import * as q from './queries/node.ts';

export const uid = 'codelab-node';

export function nodeDashboard(): Dashboard {
  return finish(
    codelabDashboard(
      uid,
      'CodeLab / Node.js runtime',
      'Event loop lag, heap and memory, garbage collection, CPU and handles of every service process, per scrape job.',
      ['nodejs'],
    )
      .withVariable(jobVariable())
      .withRow(new RowBuilder('Event loop'))
      .withPanel(
        timeseries({
          title: 'Event loop lag p99',
          description: 'p99 of the event loop delay (sampled every 10 ms) per service: every request on the process waits about this long.',
          unit: UNITS.seconds,
          queries: [{ expr: q.eventLoopLag('p99'), legend: '{{job}}' }],
          thresholds: [
            { value: null, color: 'green' },
            { value: 0.2, color: 'red' },
          ],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Event loop lag p50',
          description: 'Median event loop delay per service.',
          unit: UNITS.seconds,
          queries: [{ expr: q.eventLoopLag('p50'), legend: '{{job}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Event loop lag max',
          description: 'Largest event loop delay seen per service since the previous scrape window (blocking work shows here first).',
          unit: UNITS.seconds,
          queries: [{ expr: q.eventLoopLag('max'), legend: '{{job}}' }],
          w: 8,
        }),
      )
      .withRow(new RowBuilder('Memory'))
      .withPanel(
        timeseries({
          title: 'Heap used and total',
          description: 'V8 heap used and allocated per service. Used growing without GC bringing it back suggests a leak.',
          unit: UNITS.bytes,
          queries: [
            { expr: q.heapUsed(), legend: '{{job}} used' },
            { expr: q.heapTotal(), legend: '{{job}} total' },
          ],
          min: 0,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Resident and external memory',
          description: 'Resident set size of the process and memory of C++ objects bound to JavaScript (buffers), per service.',
          unit: UNITS.bytes,
          queries: [
            { expr: q.residentMemory(), legend: '{{job}} rss' },
            { expr: q.externalMemory(), legend: '{{job}} external' },
          ],
          min: 0,
        }),
      )
      .withRow(new RowBuilder('Garbage collection and CPU'))
      .withPanel(
        timeseries({
          title: 'Time in GC',
          description: 'Share of wall time spent in garbage collection per service and GC kind (major, minor, incremental, weakcb).',
          unit: UNITS.percentUnit,
          queries: [{ expr: q.gcTimeRatio(), legend: '{{job}} {{kind}}' }],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'GC runs',
          description: 'Garbage collections per second per service and GC kind.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.gcRate(), legend: '{{job}} {{kind}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'CPU',
          description: 'CPU time used per second (1 = one full core) per service.',
          unit: UNITS.percentUnit,
          queries: [{ expr: q.cpu(), legend: '{{job}}' }],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Active handles',
          description: 'Active libuv handles (sockets, timers, …) per service.',
          unit: UNITS.count,
          queries: [{ expr: q.activeHandles(), legend: '{{job}}' }],
        }),
      )
      .withPanel(
        timeseries({
          title: 'Open file descriptors',
          description: 'Open file descriptors per service.',
          unit: UNITS.count,
          queries: [{ expr: q.openFds(), legend: '{{job}}' }],
        }),
      ),
  );
}
