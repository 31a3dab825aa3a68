/**
 * Prometheus and Alertmanager beside the fault suite's Compose stack, as users add them
 * (docker-compose.observability.yml, PROMETHEUS_CONFIG=… with prometheus.compose.yml's scrape jobs),
 * on a clock SCALE times faster: every rule window, `for`, scrape, evaluation and discovery
 * interval divided by it (the rule generator's `scale`), Alertmanager's shipped routing with short
 * waits and its webhooks pointed at a receiver in the test.
 */
import { createServer, type Server } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { causeRules, loadSlos, redRules, scaleDuration, sloRules, type RuleGroup } from '../../../alerts/src/rules.ts';
import { REPO_ROOT } from '../../helpers/processes.ts';

export interface Notification {
  /** ms epoch of arrival. */
  at: number;
  /** `/pager` or `/ticket`. */
  receiver: string;
  status: 'firing' | 'resolved';
  alerts: { status: 'firing' | 'resolved'; labels: Record<string, string>; startsAt: string; endsAt: string }[];
}

/** Receives Alertmanager's webhooks; listens on every address (the containers reach it through host.docker.internal). */
export class AlertReceiver {
  readonly notifications: Notification[] = [];
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        try {
          const n = JSON.parse(body) as Omit<Notification, 'at' | 'receiver'>;
          this.notifications.push({ at: Date.now(), receiver: req.url ?? '', status: n.status, alerts: n.alerts });
        } catch {
          // not a notification: ignored
        }
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((ok) => this.server!.listen(0, '0.0.0.0', ok));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** The first notification after `since` in which an alert matching `labels` has `status`; its arrival time. */
  seen(labels: Record<string, string>, status: 'firing' | 'resolved', since: number): number | undefined {
    const matches = (l: Record<string, string>) => Object.entries(labels).every(([k, v]) => l[k] === v);
    return this.notifications.find((n) => n.at >= since && n.alerts.some((a) => a.status === status && matches(a.labels)))?.at;
  }

  summary(since = 0): string {
    return JSON.stringify(
      this.notifications
        .filter((n) => n.at >= since)
        .map((n) => [
          n.receiver,
          ...n.alerts.map((a) => `${a.labels.alertname}{${a.labels.instance ?? a.labels.service ?? ''}}=${a.status}`),
        ]),
    );
  }

  close(): void {
    this.server?.close();
  }
}

/**
 * Writes the overlay into `dir`: the fault clock's Prometheus config and rules, Alertmanager's
 * config, and a Compose file that mounts them over the shipped ones. Returns the Compose files
 * (docker-compose.yml, docker-compose.observability.yml, the overlay) and the variables they need.
 */
export function writeObservabilityOverlay(
  dir: string,
  opts: { scale: number; receiverPort: number; prometheusPort: number; alertmanagerPort: number },
): { files: string[]; env: Record<string, string> } {
  const { scale } = opts;
  mkdirSync(path.join(dir, 'rules'), { recursive: true });
  const shipped = parse(readFileSync(path.join(REPO_ROOT, 'deploy/prometheus/prometheus.compose.yml'), 'utf8')) as {
    global: Record<string, string>;
    scrape_configs: { dns_sd_configs?: { refresh_interval?: string }[] }[];
  };
  // not below 3 s: a scrape runs the readiness checks, each allowed 2 s (a dependency that hangs
  // must show as a failed check, not as a failed scrape)
  shipped.global.scrape_interval = `${Math.max(3, Number.parseInt(scaleDuration(shipped.global.scrape_interval!, scale), 10))}s`;
  shipped.global.scrape_timeout = shipped.global.scrape_interval;
  shipped.global.evaluation_interval = scaleDuration(shipped.global.evaluation_interval!, scale);
  for (const job of shipped.scrape_configs)
    for (const sd of job.dns_sd_configs ?? []) sd.refresh_interval = scaleDuration(sd.refresh_interval ?? '30s', scale);
  writeFileSync(path.join(dir, 'prometheus.faults.yml'), stringify(shipped));

  const { slos } = loadSlos(path.join(REPO_ROOT, 'alerts/slos.yaml'));
  const every = scaleDuration('30s', scale);
  const write = (file: string, groups: RuleGroup[]) =>
    writeFileSync(path.join(dir, 'rules', file), stringify({ groups: groups.map((g) => ({ ...g, interval: every })) }));
  write('red.rules.yml', [redRules()]);
  write('slo.rules.yml', sloRules(slos, { scale }));
  write('causes.rules.yml', causeRules({ scale }));

  const am = parse(readFileSync(path.join(REPO_ROOT, 'deploy/alertmanager/alertmanager.yml'), 'utf8')) as {
    route: Record<string, unknown>;
    receivers: { webhook_configs?: { url: string }[] }[];
  };
  Object.assign(am.route, { group_wait: '1s', group_interval: '1s', repeat_interval: '1h' });
  for (const r of am.receivers)
    for (const w of r.webhook_configs ?? []) w.url = `http://host.docker.internal:${opts.receiverPort}${new URL(w.url).pathname}`;
  writeFileSync(path.join(dir, 'alertmanager.yml'), stringify(am));

  const overlay = {
    services: {
      prometheus: {
        volumes: [
          `${path.join(dir, 'prometheus.faults.yml')}:/codelab/deploy/prometheus/prometheus.faults.yml:ro`,
          `${path.join(dir, 'rules')}/:/codelab/alerts/generated/:ro`,
        ],
      },
      alertmanager: { volumes: [`${path.join(dir, 'alertmanager.yml')}:/etc/alertmanager/alertmanager.yml:ro`] },
    },
  };
  writeFileSync(path.join(dir, 'faults.override.yml'), stringify(overlay));
  return {
    files: [
      path.join(REPO_ROOT, 'docker-compose.yml'),
      path.join(REPO_ROOT, 'docker-compose.observability.yml'),
      path.join(dir, 'faults.override.yml'),
    ],
    env: {
      PROMETHEUS_CONFIG: 'prometheus.faults.yml',
      PROMETHEUS_PORT: String(opts.prometheusPort),
      ALERTMANAGER_PORT: String(opts.alertmanagerPort),
      OBSERVABILITY_BIND_ADDRESS: '127.0.0.1',
    },
  };
}

/** An instant query against the stack's Prometheus; the result vector. */
export async function query(prometheusUrl: string, promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  if (body.status !== 'success') throw new Error(`query ${promql}: ${JSON.stringify(body)}`);
  return body.data.result;
}
