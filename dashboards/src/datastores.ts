/** Data stores: the PostgreSQL pools of auth and runtime (utilization, saturation, query durations) and the auth limiter's Redis. */
import { RowBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { codelabDashboard, finish, latency, serviceVariable, stat, timeseries, UNITS } from './lib.ts';
import * as q from './queries/datastores.ts';

export const uid = 'codelab-datastores';

export function datastoresDashboard(): Dashboard {
  return finish(
    codelabDashboard(
      uid,
      'CodeLab / Data stores',
      'PostgreSQL connection pools (total, idle, used, waiting) and query durations per service; the Redis behind the auth limiter.',
      ['postgresql', 'redis'],
    )
      .withVariable(serviceVariable('db_client_connections_max'))
      .withRow(new RowBuilder('PostgreSQL pools'))
      .withPanel(
        timeseries({
          title: 'Pool connections',
          description: 'Connections of each pool by state (idle, used), with the pool’s maximum.',
          unit: UNITS.count,
          queries: [
            { expr: q.connectionsByState(), legend: '{{service}}/{{pool}} {{state}}' },
            { expr: q.connectionsMax(), legend: '{{service}}/{{pool}} max' },
          ],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Pool utilization',
          description: 'Share of each pool’s maximum connections in use. Near 100%, new queries wait for a connection.',
          unit: UNITS.percentUnit,
          queries: [{ expr: q.poolUtilization(), legend: '{{service}}/{{pool}}' }],
          min: 0,
          max: 1,
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Waiting clients',
          description:
            'Queries waiting for a pool connection (saturation). Anything above zero for long means the pool is too small or queries are slow.',
          unit: UNITS.count,
          queries: [{ expr: q.pendingRequests(), legend: '{{service}}/{{pool}}' }],
          min: 0,
          w: 8,
        }),
      )
      .withRow(new RowBuilder('PostgreSQL queries'))
      .withPanel(
        latency({
          title: 'Query duration p95 by operation',
          description:
            '95th percentile of query duration, including the wait for a pool connection, by service and operation (select, insert, update, begin, commit…).',
          queries: [{ expr: q.operationDuration(0.95), legend: '{{service}} {{operation}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Queries by operation',
          description: 'Queries per second by service, operation and outcome.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.operationRate(), legend: '{{service}} {{operation}} {{outcome}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Query error ratio',
          description: 'Share of queries that failed, by service.',
          unit: UNITS.percentUnit,
          queries: [{ expr: q.operationErrorRatio(), legend: '{{service}}' }],
          min: 0,
          w: 8,
        }),
      )
      .withRow(new RowBuilder('Redis (auth limiter)'))
      .withPanel(
        stat({
          title: 'Limiter backend',
          description:
            'Where auth keeps its lockout and rate-limit counters: redis (shared by every instance) or memory (per instance, when Redis is unset or unreachable). 1 marks the backend in use.',
          unit: UNITS.none,
          queries: [{ expr: q.limiterBackend(), legend: '{{backend}}' }],
          mappings: { '0': { text: 'unused', color: 'text' }, '1': { text: 'in use', color: 'green' } },
          w: 8,
          h: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Redis errors',
          description: 'Redis commands of the auth limiter that failed or timed out per second (answered from memory instead).',
          unit: UNITS.perSecond,
          queries: [{ expr: q.redisErrors(), legend: 'errors' }],
          w: 16,
        }),
      ),
  );
}
