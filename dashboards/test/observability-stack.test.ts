/**
 * docker-compose.observability.yml and its files under deploy/: the compose file is valid for
 * Debian's docker-compose on its own (the platform on the host) and merged with docker-compose.yml
 * (the platform in containers, one network), every image is pinned, every port is published on
 * OBSERVABILITY_BIND_ADDRESS (loopback by default), the mounts point at the files the tests use,
 * both Prometheus configs are valid and agree, and the Grafana, collector, Loki and Tempo configs
 * agree with each other and with the dashboards.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { missingProgram } from '@codelab/service-kit/testing';
import { DATASOURCE_UIDS } from '../src/lib.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMPOSE_FILE = 'docker-compose.observability.yml';
const MAIN_COMPOSE_FILE = 'docker-compose.yml';
const PROMETHEUS_CONFIGS = ['prometheus.yml', 'prometheus.compose.yml'] as const;
const JOINED_COMMAND =
  'PROMETHEUS_CONFIG=prometheus.compose.yml docker compose -f docker-compose.yml -f docker-compose.observability.yml up -d';
const JOINED_ENV = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318', LOKI_URL: 'http://loki:3100' };
// The four API services and the website: each is scraped, ships its logs and sends its traces.
const PLATFORM_SERVICES = ['auth', 'gateway', 'runtime', 'llm-proxy', 'web'];

// Loose shapes: the tests check the values they rely on.
// biome-ignore lint/suspicious/noExplicitAny: parsed YAML, walked loosely (see above)
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

/** `--config.file=<dir>${PROMETHEUS_CONFIG:-<default>}` of the Prometheus service, split up. */
function prometheusConfigFlag(): { dir: string; fallback: string } {
  const flags = (compose().services.prometheus.command as string[]).filter((c) => c.startsWith('--config.file='));
  expect(flags).toHaveLength(1);
  const match = /^--config\.file=(\/.+\/)\$\{PROMETHEUS_CONFIG:-([\w.-]+)\}$/.exec(flags[0]!);
  expect(match, flags[0]).not.toBeNull();
  return { dir: match![1]!, fallback: match![2]! };
}

type Job = {
  job_name: string;
  static_configs?: { targets: string[] }[];
  dns_sd_configs?: { names: string[]; type: string; port: number }[];
};
const jobs = (file: string): Job[] => readYaml(`deploy/prometheus/${file}`).scrape_configs as Job[];

/**
 * `docker-compose config` of the given files, resolved the way `up` would resolve them: only the
 * variables given (no .env, nothing from the caller's shell), so the defaults of the files show.
 */
function resolvedConfig(files: string[], vars: Record<string, string> = {}): Yaml {
  const dir = mkdtempSync(join(tmpdir(), 'compose-config-'));
  try {
    const envFile = join(dir, 'empty.env');
    writeFileSync(envFile, '');
    const out = execFileSync('docker-compose', ['--env-file', envFile, ...files.flatMap((f) => ['-f', f]), 'config'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: process.env.LANG ?? 'C.UTF-8', ...vars },
    });
    return parse(out) as Yaml;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
/** The secrets docker-compose.yml requires (any non-placeholder value passes `config`). */
const MAIN_SECRETS = {
  CODELAB_INTERNAL_API_KEY: 'test-internal-api-key-0123456789abcdef',
  POSTGRES_PASSWORD: 'testpostgrespassword0123456789',
  AUTH_SERVICE__MASTER_KEY: 'test-admin-password-0123456789',
};

/** Published ports of a resolved service, in either syntax docker-compose prints. */
function publishedPorts(service: Yaml): { hostIp: string; published: number; target: number }[] {
  return ((service.ports ?? []) as (string | Yaml)[]).map((p) => {
    if (typeof p !== 'string') return { hostIp: p.host_ip ?? '', published: Number(p.published), target: Number(p.target) };
    const parts = p.replace(/\/\w+$/, '').split(':');
    const [target, published, ...ip] = parts.reverse();
    return { hostIp: ip.reverse().join(':'), published: Number(published), target: Number(target) };
  });
}
/** Bind mounts of a resolved service: container path → host path. */
function resolvedMounts(service: Yaml): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of (service.volumes ?? []) as (string | Yaml)[]) {
    if (typeof v !== 'string') {
      if (v.type === 'bind') out.set(v.target as string, v.source as string);
      continue;
    }
    const [host, container] = v.split(':');
    if (host?.startsWith('/') && container) out.set(container, host);
  }
  return out;
}
/** Networks a resolved service is on (none listed: the project's default network). */
const serviceNetworks = (service: Yaml): string[] =>
  service.networks ? (Array.isArray(service.networks) ? service.networks : Object.keys(service.networks)) : ['default'];

describe('docker-compose.observability.yml', () => {
  it.skipIf(missingProgram('docker-compose', 'docker-compose'))('is valid for docker-compose (config -q)', () => {
    execFileSync('docker-compose', ['-f', COMPOSE_FILE, 'config', '-q'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  });

  it('runs Prometheus, Alertmanager, Grafana, Loki, Tempo and the OpenTelemetry Collector on pinned images', () => {
    const services = compose().services as Record<string, { image: string }>;
    for (const name of ['prometheus', 'alertmanager', 'grafana', 'loki', 'tempo', 'otel-collector'])
      expect(services[name], name).toBeDefined();
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

  it("leaves the network to Compose: standalone its own default network, merged the main stack's", () => {
    expect(compose().networks).toBeUndefined();
    for (const [name, s] of Object.entries(compose().services as Record<string, Yaml>)) {
      expect(s.networks, name).toBeUndefined();
      expect(s.network_mode, name).toBeUndefined();
    }
  });

  it('gives Prometheus both configs (PROMETHEUS_CONFIG picks one, prometheus.yml by default), the rules of alerts/, exemplar storage and the host', () => {
    const p = compose().services.prometheus;
    const m = mounts('prometheus');
    expect(p.command).toContain('--enable-feature=exemplar-storage');
    expect(p.extra_hosts).toContain('host.docker.internal:host-gateway');
    const { dir, fallback } = prometheusConfigFlag();
    expect(fallback).toBe('prometheus.yml');
    expect(m.has('./alerts/generated/')).toBe(true);
    expect(m.has('./alerts/rules/')).toBe(true);
    const ruleDirs = [...m.entries()].filter(([host]) => host.startsWith('./alerts/')).map(([, c]) => c.replace(/\/$/, ''));
    for (const file of PROMETHEUS_CONFIGS) {
      const configPath = `${dir}${file}`;
      expect(m.get(`./deploy/prometheus/${file}`), file).toBe(configPath);
      // rule_files are relative to the config file: they must land in a mounted rules directory.
      for (const rule of (readYaml(`deploy/prometheus/${file}`).rule_files ?? []) as string[]) {
        const resolved = posix.resolve(posix.dirname(configPath), rule);
        expect(
          ruleDirs.some((d) => resolved.startsWith(`${d}/`)),
          `${file}: ${rule} → ${resolved}`,
        ).toBe(true);
      }
    }
  });

  it('prometheus.yml scrapes the services on the host through host.docker.internal', () => {
    for (const job of jobs('prometheus.yml')) {
      expect(job.static_configs, job.job_name).toBeDefined();
      for (const target of (job.static_configs ?? []).flatMap((s) => s.targets))
        expect(target, job.job_name).toMatch(/^host\.docker\.internal:\d+$/);
    }
  });

  it('prometheus.compose.yml finds every replica of the same services by their Compose names, on the same ports, with the same rules', () => {
    const host = readYaml('deploy/prometheus/prometheus.yml');
    const inCompose = readYaml('deploy/prometheus/prometheus.compose.yml');
    for (const key of ['global', 'rule_files', 'alerting']) expect(inCompose[key], key).toEqual(host[key]);
    const hostPorts = new Map(
      jobs('prometheus.yml').map((j) => [j.job_name, j.static_configs!.flatMap((s) => s.targets).map((t) => Number(t.split(':')[1]))]),
    );
    const mainServices = readYaml(MAIN_COMPOSE_FILE).services as Record<string, Yaml>;
    expect(
      jobs('prometheus.compose.yml')
        .map((j) => j.job_name)
        .sort(),
    ).toEqual([...hostPorts.keys()].sort());
    for (const job of jobs('prometheus.compose.yml')) {
      expect(job.static_configs, job.job_name).toBeUndefined();
      expect(job.dns_sd_configs, job.job_name).toHaveLength(1);
      const sd = job.dns_sd_configs![0]!;
      expect(sd.type, job.job_name).toBe('A'); // every address of the name: one target per replica
      expect(sd.names, job.job_name).toEqual([job.job_name]);
      expect(mainServices[job.job_name], `${job.job_name} is a service of ${MAIN_COMPOSE_FILE}`).toBeDefined();
      expect([sd.port], job.job_name).toEqual(hostPorts.get(job.job_name));
    }
    expect(
      jobs('prometheus.compose.yml')
        .map((j) => j.job_name)
        .sort(),
    ).toEqual([...PLATFORM_SERVICES].sort());
  });

  it.skipIf(missingProgram('promtool', 'prometheus'))('both Prometheus configs pass promtool check config (with their rule files)', () => {
    for (const file of PROMETHEUS_CONFIGS) {
      const out = execFileSync('promtool', ['check', 'config', `deploy/prometheus/${file}`], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      expect(out, file).toContain(`SUCCESS: deploy/prometheus/${file} is valid prometheus config file syntax`);
      expect(out, file).not.toContain('FAILED');
    }
  });

  it('gives Alertmanager the shared config', () => {
    const a = compose().services.alertmanager;
    const container = mounts('alertmanager').get('./deploy/alertmanager/alertmanager.yml');
    expect(a.command).toContain(`--config.file=${container}`);
  });

  it('provisions Grafana with the datasources and the generated dashboards, read-only', () => {
    const volumes = compose().services.grafana.volumes as string[];
    for (const host of [
      './deploy/grafana/provisioning/datasources/',
      './deploy/grafana/provisioning/dashboards/',
      './dashboards/generated/',
    ]) {
      expect(
        volumes.find((v) => v.startsWith(`${host}:`)),
        host,
      ).toMatch(/:ro$/);
    }
    const provider = readYaml('deploy/grafana/provisioning/dashboards/dashboards.yaml').providers[0];
    expect(provider.type).toBe('file');
    expect(`${provider.options.path}/`).toBe(mounts('grafana').get('./dashboards/generated/'));
  });

  it('publishes the ports of deploy/README.md, each on OBSERVABILITY_BIND_ADDRESS (127.0.0.1 by default)', () => {
    const ports = Object.values(compose().services as Record<string, { ports?: string[] }>).flatMap((s) => s.ports ?? []);
    // host port = container port, or a variable defaulting to it (PROMETHEUS_PORT, ALERTMANAGER_PORT)
    for (const p of ports)
      expect(p).toMatch(/^\$\{OBSERVABILITY_BIND_ADDRESS:-127\.0\.0\.1\}:(?:(\d+)|\$\{[A-Z_]+_PORT:-(\d+)\}):(?:\1|\2)$/);
    const published = ports.map((p) => p.split(':').at(-1));
    for (const p of ['4317', '4318', '3100', '3000', '9090', '9093']) expect(published).toContain(p);
  });

  it('documents the joined mode (command and the two .env lines) in its header and in deploy/README.md', () => {
    for (const file of [COMPOSE_FILE, 'deploy/README.md']) {
      const text = readFileSync(`${ROOT}${file}`, 'utf8');
      expect(text, file).toContain(JOINED_COMMAND);
      for (const [k, v] of Object.entries(JOINED_ENV)) expect(text, file).toContain(`${k}=${v}`);
      expect(text, file).toContain('OBSERVABILITY_BIND_ADDRESS');
    }
    // The two URLs name services of this file, on the ports they listen on.
    expect(compose().services['otel-collector']).toBeDefined();
    expect(readYaml('deploy/otel-collector/config.yaml').receivers.otlp.protocols.http.endpoint).toBe(
      `0.0.0.0:${new URL(JOINED_ENV.OTEL_EXPORTER_OTLP_ENDPOINT).port}`,
    );
    expect(compose().services.loki).toBeDefined();
    expect(readYaml('deploy/loki/config.yaml').server.http_listen_port).toBe(Number(new URL(JOINED_ENV.LOKI_URL).port));
  });
});

describe.skipIf(missingProgram('docker-compose', 'docker-compose'))(
  'docker-compose.observability.yml as docker-compose resolves it',
  () => {
    const observabilityServices = (): string[] => Object.keys(compose().services as object);

    it('standalone: scrapes the host with prometheus.yml, on its own default network, ports on 127.0.0.1', () => {
      const config = resolvedConfig([COMPOSE_FILE]);
      const p = config.services.prometheus;
      expect(p.command).toContain('--config.file=/codelab/deploy/prometheus/prometheus.yml');
      const m = resolvedMounts(p);
      for (const file of PROMETHEUS_CONFIGS)
        expect(m.get(`/codelab/deploy/prometheus/${file}`), file).toBe(`${ROOT}deploy/prometheus/${file}`);
      expect(config.networks?.default?.name).not.toBe('codelab');
      for (const name of observabilityServices()) {
        expect(serviceNetworks(config.services[name]), name).toEqual(['default']);
        for (const port of publishedPorts(config.services[name]))
          expect(port, name).toMatchObject({ hostIp: '127.0.0.1', published: port.target });
      }
      expect(publishedPorts(p)).toEqual([{ hostIp: '127.0.0.1', published: 9090, target: 9090 }]);
    });

    it('OBSERVABILITY_BIND_ADDRESS moves every published port', () => {
      const config = resolvedConfig([COMPOSE_FILE], { OBSERVABILITY_BIND_ADDRESS: '0.0.0.0' });
      const ports = observabilityServices().flatMap((name) => publishedPorts(config.services[name]));
      expect(ports.length).toBeGreaterThanOrEqual(6);
      for (const port of ports) expect(port.hostIp).toBe('0.0.0.0');
    });

    it('joined to docker-compose.yml: on the main stack network, scraping the containers with prometheus.compose.yml, telemetry passed through', () => {
      const network = 'codelab-observability-test';
      const config = resolvedConfig([MAIN_COMPOSE_FILE, COMPOSE_FILE], {
        ...MAIN_SECRETS,
        ...JOINED_ENV,
        CODELAB_NETWORK: network,
        PROMETHEUS_CONFIG: 'prometheus.compose.yml',
      });
      // One default network, the main stack's (named by CODELAB_NETWORK), shared by both files' services.
      expect(config.networks.default.name).toBe(network);
      expect(serviceNetworks(config.services.nginx)).toEqual(['default']);
      for (const name of observabilityServices()) expect(serviceNetworks(config.services[name]), name).toEqual(['default']);
      for (const name of PLATFORM_SERVICES) expect(serviceNetworks(config.services[name]), name).toEqual(['default']);

      const p = config.services.prometheus;
      expect(p.command).toContain('--config.file=/codelab/deploy/prometheus/prometheus.compose.yml');
      expect(resolvedMounts(p).get('/codelab/deploy/prometheus/prometheus.compose.yml')).toBe(
        `${ROOT}deploy/prometheus/prometheus.compose.yml`,
      );
      for (const job of jobs('prometheus.compose.yml'))
        for (const name of job.dns_sd_configs![0]!.names) expect(config.services[name], name).toBeDefined();

      // The services send traces to the collector and logs to Loki by name.
      for (const name of PLATFORM_SERVICES) expect(config.services[name].environment, name).toMatchObject(JOINED_ENV);
      // Still loopback only by default: the main stack publishes nginx, the observability stack nothing outside.
      for (const name of observabilityServices())
        for (const port of publishedPorts(config.services[name])) expect(port.hostIp, name).toBe('127.0.0.1');
    });

    it('joined without PROMETHEUS_CONFIG: still valid, Prometheus on the default (host) config', () => {
      const config = resolvedConfig([MAIN_COMPOSE_FILE, COMPOSE_FILE], MAIN_SECRETS);
      expect(config.networks.default.name).toBe('codelab');
      expect(serviceNetworks(config.services.prometheus)).toEqual(['default']);
      expect(config.services.prometheus.command).toContain('--config.file=/codelab/deploy/prometheus/prometheus.yml');
    });
  },
);

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
    const line = JSON.stringify({
      level: 30,
      service: 'gateway',
      trace_id: '0af7651916cd43dd8448eb211c80319c',
      span_id: 'b7ad6b7169203331',
      msg: 'request completed',
    });
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
    for (const f of ['deploy/otel-collector/config.yaml', 'deploy/loki/config.yaml', 'deploy/tempo/config.yaml'])
      expect(readYaml(f), f).toBeTypeOf('object');
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
    expect(compose().services['otel-collector'].command).toContain(
      `--config=${mounts('otel-collector').get('./deploy/otel-collector/config.yaml')}`,
    );
  });

  it('serve Loki and Tempo where Grafana and the services look for them', () => {
    expect(readYaml('deploy/loki/config.yaml').server.http_listen_port).toBe(3100);
    expect(readYaml('deploy/tempo/config.yaml').server.http_listen_port).toBe(3200);
    expect(compose().services.loki.command).toContain(`-config.file=${mounts('loki').get('./deploy/loki/config.yaml')}`);
    expect(compose().services.tempo.command).toContain(`-config.file=${mounts('tempo').get('./deploy/tempo/config.yaml')}`);
  });
});
