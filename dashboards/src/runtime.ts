/** Agent runtime: conversation turns, persisted messages, the LLM as the runtime sees it. */
import { RowBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { codelabDashboard, finish, latency, timeseries, UNITS } from './lib.ts';
import * as q from './queries/runtime.ts';

export const uid = 'codelab-runtime';

export function runtimeDashboard(): Dashboard {
  return finish(
    codelabDashboard(
      uid,
      'CodeLab / Agent runtime',
      'Conversation turns in the runtime, the messages it persists, and the LLM calls it makes through the llm-proxy.',
      ['runtime'],
    )
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
      .withRow(new RowBuilder('Agents, tools and approvals'))
      .withPanel(
        timeseries({
          title: 'Turns by agent',
          description: 'Turns per second by the agent that answered last and outcome (tool_call: the turn handed a tool call to the IDE).',
          unit: UNITS.perSecond,
          queries: [{ expr: q.turnsByAgent(), legend: '{{agent}} {{outcome}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Tool calls by outcome',
          description:
            'Tool calls per second by tool and outcome: forbidden and invalid calls became error results for the LLM; expired approvals were rejected.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.toolCallsByOutcome(), legend: '{{tool}} {{outcome}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Agent switches',
          description:
            'Agent switches per second by source (routing by the orchestrator, the user, an agent’s switch_mode) and target agent.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.agentSwitches(), legend: '{{source}} → {{to}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Approvals by decision',
          description:
            'Human decisions on tool calls per second: approve, edit, reject, expired (no decision within AGENT_RUNTIME__APPROVAL_TIMEOUT).',
          unit: UNITS.perSecond,
          queries: [{ expr: q.approvalsByDecision(), legend: '{{decision}}' }],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Time to decide',
          description: 'Time from a tool call needing approval being sent to its decision (p50, p95).',
          queries: [
            { expr: q.approvalDecisionTime(0.5), legend: 'p50' },
            { expr: q.approvalDecisionTime(0.95), legend: 'p95' },
          ],
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Session lease wait',
          description: 'Time a turn waited for another turn of its session (on any runtime instance) to finish (p50, p99).',
          queries: [
            { expr: q.sessionLockWait(0.5), legend: 'p50' },
            { expr: q.sessionLockWait(0.99), legend: 'p99' },
          ],
          w: 8,
        }),
      )
      .withRow(new RowBuilder('LLM calls (as the runtime sees them)'))
      .withPanel(
        latency({
          title: 'LLM time to first chunk',
          description:
            'Time from the runtime’s LLM request to its first streamed token, by model (p50, p95): includes the llm-proxy and the network.',
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
