/**
 * docker-compose.observability.yml and its files under deploy/: the compose file is valid for
 * Debian's docker-compose, every image is pinned, the mounts point at the files the tests use, and
 * the Grafana, collector, Loki and Tempo configs agree with each other and with the dashboards.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { missingProgram } from '@codelab/service-kit/testing';
import { DATASOURCE_UIDS } from '../src/lib.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMPOSE_FILE = 'docker-compose.observability.yml';

// Loose shapes: the tests check the values they rely on.
type Yaml = any;
const readYaml = (path: string): Yaml => parse(readFileSync(`${ROOT}${path}`, 'utf8'), { merge: true }) as Yaml;

const compose = (): Yaml => readYaml(COMPOSE_FILE);
/** The bind mounts of a compose service: host path (as written) → container path. */
function mounts(service: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of (compose().services[service].volumes ?? []) as string[]) {
    const [host, container] = v.split(':');
    if (host?.startsWith('./') && container) out.set(host, container);
  }
  return out;
}

describe('docker-compose.observability.yml', () => {
  it.skipIf(missingProgram('docker-compose', 'docker-compose'))('is valid for docker-compose (config -q)', () => {
    execFileSync('docker-compose', ['-f', COMPOSE_FILE, 'config', '-q'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  });

  it('runs Prometheus, Alertmanager, Grafana, Loki, Tempo and the OpenTelemetry Collector on pinned images', () => {
    const services = compose().services as Record<string, { image: string }>;
    for (const name of ['prometheus', 'alertmanager', 'grafana', 'loki', 'tempo', 'otel-collector']) expect(services[name], name).toBeDefined();
    for (const [name, s] of Object.entries(services)) {
      expect(s.image, name).toMatch(/^[\w./-]+:v?\d+\.\d+(\.\d+)?$/);
    }
  });

  it('mounts only files that exist (alerts/rules/ may still be empty)', () => {
    for (const name of Object.keys(compose().services as object)) {
      for (const host of mounts(name).keys()) {
        if (host === './alerts/rules/') continue;
        expect(existsSync(`${ROOT}${host.slice(2)}`), `${name}: ${host}`).toBe(true);
      }
    }
  });

  it('gives Prometheus the shared config, the rules of alerts/, exemplar storage and the host', () => {
    const p = compose().services.prometheus;
    const m = mounts('prometheus');
    expect(p.command).toContain('--enable-feature=exemplar-storage');
    expect(p.extra_hosts).toContain('host.docker.internal:host-gateway');
    const configFlag = (p.command as string[]).find((c) => c.startsWith('--config.file='));
    const configPath = configFlag?.slice('--config.file='.length);
    expect(m.get('./deploy/prometheus/prometheus.yml')).toBe(configPath);
    expect(m.has('./alerts/generated/')).toBe(true);
    expect(m.has('./alerts/rules/')).toBe(true);
    // rule_files are relative to the config file: they must land in a mounted rules directory.
    const config = readYaml('deploy/prometheus/prometheus.yml');
    const ruleDirs = [...m.entries()].filter(([host]) => host.startsWith('./alerts/')).map(([, c]) => c.replace(/\/$/, ''));
    for (const rule of (config.rule_files ?? []) as string[]) {
      const resolved = posix.resolve(posix.dirname(configPath ?? '/'), rule);
      expect(ruleDirs.some((dir) => resolved.startsWith(`${dir}/`)), `${rule} → ${resolved}`).toBe(true);
    }
    // The services run on the host: every scrape target is reached through host.docker.internal.
    for (const job of config.scrape_configs as { job_name: string; static_configs?: { targets: string[] }[] }[]) {
      for (const target of (job.static_configs ?? []).flatMap((s) => s.targets)) expect(target, job.job_name).toMatch(/^(host\.docker\.internal|[a-z-]+):\d+$/);
    }
  });

  it('gives Alertmanager the shared config', () => {
    const a = compose().services.alertmanager;
    const container = mounts('alertmanager').get('./deploy/alertmanager/alertmanager.yml');
    expect(a.command).toContain(`--config.file=${container}`);
  });

  it('provisions Grafana with the datasources and the generated dashboards, read-only', () => {
    const volumes = compose().services.grafana.volumes as string[];
    for (const host of ['./deploy/grafana/provisioning/datasources/', './deploy/grafana/provisioning/dashboards/', './dashboards/generated/']) {
      expect(volumes.find((v) => v.startsWith(`${host}:`)), host).toMatch(/:ro$/);
    }
    const provider = readYaml('deploy/grafana/provisioning/dashboards/dashboards.yaml').providers[0];
    expect(provider.type).toBe('file');
    expect(`${provider.options.path}/`).toBe(mounts('grafana').get('./dashboards/generated/'));
  });

  it('publishes the ports of deploy/README.md (OTLP 4318, Loki 3100, Grafana 3000, Prometheus 9090)', () => {
    const ports = Object.values(compose().services as Record<string, { ports?: string[] }>).flatMap((s) => s.ports ?? []);
    for (const p of ['4317:4317', '4318:4318', '3100:3100', '3000:3000', '9090:9090', '9093:9093']) expect(ports).toContain(p);
  });
});

describe('deploy/grafana datasources', () => {
  const list = (): Yaml[] => readYaml('deploy/grafana/provisioning/datasources/datasources.yaml').datasources;
  const byType = (type: string): Yaml => list().find((d) => d.type === type);

  it('has Prometheus, Loki and Tempo under the fixed uids the dashboards use', () => {
    expect(byType('prometheus').uid).toBe(DATASOURCE_UIDS.prometheus);
    expect(byType('loki').uid).toBe(DATASOURCE_UIDS.loki);
    expect(byType('tempo').uid).toBe(DATASOURCE_UIDS.tempo);
    expect(readFileSync(`${ROOT}deploy/grafana/provisioning/datasources/datasources.yaml`, 'utf8')).not.toContain('${DS_');
  });

  it('links Prometheus exemplars to Tempo, with timeInterval the scrape interval', () => {
    const p = byType('prometheus');
    expect(p.url).toBe('http://prometheus:9090');
    expect(p.jsonData.exemplarTraceIdDestinations).toEqual([{ name: 'trace_id', datasourceUid: DATASOURCE_UIDS.tempo }]);
    expect(p.jsonData.timeInterval).toBe(readYaml('deploy/prometheus/prometheus.yml').global.scrape_interval);
  });

  it('links the trace_id of a JSON log line to Tempo', () => {
    const field = byType('loki').jsonData.derivedFields[0];
    expect(field.datasourceUid).toBe(DATASOURCE_UIDS.tempo);
    const line = JSON.stringify({ level: 30, service: 'gateway', trace_id: '0af7651916cd43dd8448eb211c80319c', span_id: 'b7ad6b7169203331', msg: 'request completed' });
    expect(new RegExp(field.matcherRegex as string).exec(line)?.[1]).toBe('0af7651916cd43dd8448eb211c80319c');
  });

  it('links Tempo spans to Loki logs and Prometheus metrics of their service', () => {
    const t = byType('tempo').jsonData;
    expect(t.tracesToLogsV2.datasourceUid).toBe(DATASOURCE_UIDS.loki);
    expect(t.tracesToMetrics.datasourceUid).toBe(DATASOURCE_UIDS.prometheus);
    // pino-loki labels streams with `service`; the RED histogram carries `service` too.
    expect(t.tracesToLogsV2.tags).toContainEqual({ key: 'service.name', value: 'service' });
    expect(t.tracesToMetrics.tags).toContainEqual({ key: 'service.name', value: 'service' });
  });
});

describe('deploy collector, Loki and Tempo configs', () => {
  it('parse as YAML', () => {
    for (const f of ['deploy/otel-collector/config.yaml', 'deploy/loki/config.yaml', 'deploy/tempo/config.yaml']) expect(readYaml(f), f).toBeTypeOf('object');
  });

  it('send OTLP traces from the collector to the OTLP receiver of Tempo', () => {
    const c = readYaml('deploy/otel-collector/config.yaml');
    const traces = c.service.pipelines.traces;
    expect(traces.receivers).toEqual(['otlp']);
    expect(c.receivers.otlp.protocols.http.endpoint).toBe('0.0.0.0:4318');
    for (const p of traces.processors as string[]) expect(c.processors[p], p).toBeDefined();
    const exporter = c.exporters[traces.exporters[0]];
    expect(exporter.endpoint).toBe('tempo:4317');
    const tempo = readYaml('deploy/tempo/config.yaml');
    expect(tempo.distributor.receivers.otlp.protocols.grpc.endpoint).toBe('0.0.0.0:4317');
    expect(compose().services['otel-collector'].command).toContain(`--config=${mounts('otel-collector').get('./deploy/otel-collector/config.yaml')}`);
  });

  it('serve Loki and Tempo where Grafana and the services look for them', () => {
    expect(readYaml('deploy/loki/config.yaml').server.http_listen_port).toBe(3100);
    expect(readYaml('deploy/tempo/config.yaml').server.http_listen_port).toBe(3200);
    expect(compose().services.loki.command).toContain(`-config.file=${mounts('loki').get('./deploy/loki/config.yaml')}`);
    expect(compose().services.tempo.command).toContain(`-config.file=${mounts('tempo').get('./deploy/tempo/config.yaml')}`);
  });
});
