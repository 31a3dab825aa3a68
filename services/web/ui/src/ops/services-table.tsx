/** Each service's health and readiness as the web server asked them (`/ops/services`), failing checks named. */
import { serviceStatuses, type ServiceStatus } from '../api/web-server-api.ts';
import { LoadStatus } from '../components/load-status.tsx';
import { useAsync } from '../use-async.ts';
import { ScrollRegion } from '../components/scroll-region.tsx';

function failingChecks(s: ServiceStatus): string[] {
  const checks = s.ready?.checks ?? {};
  const failed = s.ready?.failed ?? Object.keys(checks).filter((name) => checks[name] !== 'ok');
  return failed.map((name) => (checks[name] ? `${name}: ${checks[name]}` : name));
}

function Verdict({ ok, text }: { ok: boolean; text: string }) {
  return <span class={ok ? 'ok' : 'bad'}>{text}</span>;
}

export function ServicesTable() {
  const { data, error, loading, reload } = useAsync(serviceStatuses, []);
  return (
    <section class="panel" aria-labelledby="ops-services-title">
      <div class="page-head">
        <h2 id="ops-services-title">Services</h2>
        <button type="button" class="secondary" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </div>
      <LoadStatus loading={loading && !data} error={error} what="the services" />
      {data && (
        <ScrollRegion label={'services'}>
          <table data-testid="ops-services">
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Health</th>
                <th scope="col">Ready</th>
                <th scope="col">Failing checks</th>
                <th scope="col">Version</th>
              </tr>
            </thead>
            <tbody>
              {data.services.map((s) => {
                const failing = failingChecks(s);
                return (
                  <tr key={s.name} data-service={s.name}>
                    <th scope="row">{s.name}</th>
                    <td>
                      {s.healthStatus === null ? (
                        <Verdict ok={false} text={`unreachable${s.error ? `: ${s.error}` : ''}`} />
                      ) : (
                        <Verdict ok={s.healthStatus === 200} text={`${s.health?.status ?? '?'} (${s.healthStatus})`} />
                      )}
                    </td>
                    <td>
                      {s.readyStatus === null ? (
                        <Verdict ok={false} text="unreachable" />
                      ) : (
                        <Verdict ok={s.readyStatus === 200} text={`${s.ready?.status ?? '?'} (${s.readyStatus})`} />
                      )}
                    </td>
                    <td>{failing.length ? <Verdict ok={false} text={failing.join('; ')} /> : <span class="muted">none</span>}</td>
                    <td>{s.health?.version ?? s.ready?.version ?? '—'}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </ScrollRegion>
      )}
    </section>
  );
}
