/** The SLOs' error budget left, from Prometheus through the web server (`/ops/slo`). */
import { sloBudgets } from '../api/web-server-api.ts';
import { LoadStatus } from '../components/load-status.tsx';
import { useAsync } from '../use-async.ts';
import { ScrollRegion } from '../components/scroll-region.tsx';

const percent = (ratio: number) => `${(ratio * 100).toFixed(ratio < 0.1 ? 2 : 1)} %`;

export function SloPanel() {
  const { data, error, loading } = useAsync(sloBudgets, []);
  return (
    <section class="panel" aria-labelledby="ops-slo-title">
      <h2 id="ops-slo-title">Error budgets</h2>
      <LoadStatus loading={loading} error={error} what="the SLOs" />
      {data && !data.enabled && <p data-testid="ops-slo-disabled">Prometheus not configured (set PROMETHEUS_URL on the web service).</p>}
      {data?.enabled && data.slos.length === 0 && <p>Prometheus has no SLO figures yet.</p>}
      {data?.enabled && data.slos.length > 0 && (
        <ScrollRegion label={'error budgets'}>
          <table data-testid="ops-slo">
            <thead>
              <tr>
                <th scope="col">SLO</th>
                <th scope="col">Service</th>
                <th scope="col">Objective</th>
                <th scope="col">Budget left</th>
              </tr>
            </thead>
            <tbody>
              {data.slos.map((s) => (
                <tr key={`${s.service}/${s.slo}`}>
                  <th scope="row">{s.slo}</th>
                  <td>{s.service}</td>
                  <td>{s.objective === undefined ? '—' : percent(s.objective)}</td>
                  <td>
                    {s.budgetRemaining === null ? (
                      <span class="muted">no data</span>
                    ) : (
                      <span class={s.budgetRemaining > 0.25 ? 'ok' : 'bad'}>{percent(s.budgetRemaining)}</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollRegion>
      )}
    </section>
  );
}
