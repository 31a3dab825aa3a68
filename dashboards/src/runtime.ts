/** Agent runtime: conversation turns, persisted messages, the LLM as the runtime sees it. */
import { RowBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { codelabDashboard, finish, latency, timeseries, UNITS } from './lib.ts';
import * as q from './queries/runtime.ts';

export const uid = 'codelab-runtime';

export function runtimeDashboard(): Dashboard {
  return finish(
    codelabDashboard(uid, 'CodeLab / Agent runtime', 'Conversation turns in the runtime, the messages it persists, and the LLM calls it makes through the llm-proxy.', ['runtime'])
      .withRow(new RowBuilder('Turns'))
      .withPanel(
        timeseries({
          title: 'Turns by outcome',
          description: 'Conversation turns per second by message type and outcome.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.turnsByOutcome(), legend: '{{type}} {{outcome}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Turn error ratio',
          description: 'Share of turns that did not end `ok`.',
          unit: UNITS.percentUnit,
          queries: [{ expr: q.turnErrorRatio(), legend: 'not ok' }],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Active turns',
          description: 'Turns the runtime is processing now.',
          unit: UNITS.count,
          queries: [{ expr: q.activeTurns(), legend: 'active' }],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Turn duration',
          description: 'Duration of a turn in the runtime, from request to final chunk (p50, p95, p99).',
          queries: [
            { expr: q.turnDuration(0.5), legend: 'p50' },
            { expr: q.turnDuration(0.95), legend: 'p95' },
            { expr: q.turnDuration(0.99), legend: 'p99' },
          ],
        }),
      )
      .withPanel(
        timeseries({
          title: 'Messages persisted',
          description: 'Messages appended to session history per second, by role.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.messagesPersistedByRole(), legend: '{{role}}' }],
        }),
      )
      .withRow(new RowBuilder('LLM calls (as the runtime sees them)'))
      .withPanel(
        latency({
          title: 'LLM time to first chunk',
          description: 'Time from the runtime’s LLM request to its first streamed token, by model (p50, p95): includes the llm-proxy and the network.',
          queries: [
            { expr: q.llmTimeToFirstChunk(0.5), legend: '{{model}} p50' },
            { expr: q.llmTimeToFirstChunk(0.95), legend: '{{model}} p95' },
          ],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'LLM call duration',
          description: 'Duration of the runtime’s LLM calls until the stream ends, by model (p50, p95).',
          queries: [
            { expr: q.llmCallDuration(0.5), legend: '{{model}} p50' },
            { expr: q.llmCallDuration(0.95), legend: '{{model}} p95' },
          ],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'LLM calls by outcome',
          description: 'LLM calls per second by model and outcome, as the runtime sees them.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.llmCallsByOutcome(), legend: '{{model}} {{outcome}}' }],
          w: 8,
        }),
      ),
  );
}
