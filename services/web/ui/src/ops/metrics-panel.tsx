/** `GET /api/v1/events/metrics` (with its `computed` figures) and `/events/stats`: every user's activity. */
import { eventMetrics, eventStats } from '../api/events-api.ts';
import { FlatFigures, GroupFigures } from '../components/figures.tsx';
import { LoadStatus } from '../components/load-status.tsx';
import { useAsync } from '../use-async.ts';

export function MetricsPanel() {
  const metrics = useAsync(eventMetrics, []);
  const stats = useAsync(eventStats, []);
  const reload = () => {
    metrics.reload();
    stats.reload();
  };
  return (
    <section class="panel" aria-labelledby="ops-metrics-title" data-testid="ops-metrics">
      <div class="page-head">
        <h2 id="ops-metrics-title">Event metrics</h2>
        <button type="button" class="secondary" onClick={reload} disabled={metrics.loading}>
          Refresh
        </button>
      </div>
      <LoadStatus loading={metrics.loading && !metrics.data} error={metrics.error} what="the metrics" />
      {metrics.data && (
        <div class="figure-grid">
          <FlatFigures values={metrics.data.computed ?? {}} caption="Computed" />
          {Object.entries(metrics.data.metrics ?? {}).map(([group, values]) => (
            <GroupFigures key={group} values={values} caption={group.replaceAll('_', ' ')} />
          ))}
          {metrics.data.timestamp && <p class="muted">As of {metrics.data.timestamp}</p>}
        </div>
      )}
      <LoadStatus loading={stats.loading && !stats.data} error={stats.error} what="the event statistics" />
      {stats.data && <FlatFigures values={stats.data} caption="Event bus statistics" />}
    </section>
  );
}
