/**
 * Runs a rendered chart for real without a Kubernetes API server (none can run here): each pod of
 * its Deployments and StatefulSets becomes a Docker container as a kubelet would start it (image,
 * command and args, env from its ConfigMaps and Secrets, user and group, read-only root, dropped
 * capabilities, emptyDirs as tmpfs, PVCs as volumes, CPU and memory limits, the readiness probe as
 * the container's health check, restarted when it exits), reachable on one network by its Service's
 * name; and its Ingress objects become an nginx (the stand-in of the official image) configured as
 * ingress-nginx would be for them (paths, rewrite-target, timeouts, body size, WebSocket upgrade).
 * NetworkPolicies are not enforced (Docker has no equivalent); hooks are not run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { docker, dockerOk, IMAGES, removeAll, uniqueName, waitFor } from '../deploy/docker.ts';
import type { K8sObject } from './helm-tools.ts';

type Probe = {
  httpGet?: { path: string; port: number | string };
  exec?: { command: string[] };
  periodSeconds?: number;
};
type Container = {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  resources?: { limits?: { cpu?: string; memory?: string } };
  securityContext?: {
    runAsUser?: number;
    runAsGroup?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
  };
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
};
type PodSpec = {
  containers: Container[];
  securityContext?: { runAsUser?: number; runAsGroup?: number };
  volumes?: { name: string; emptyDir?: unknown; persistentVolumeClaim?: { claimName: string }; secret?: { secretName: string } }[];
};
type Workload = K8sObject & {
  spec: {
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: { metadata: { name: string } }[];
  };
};

export interface Played {
  /** nginx's address on the host, as the Ingress serves it: http://127.0.0.1:PORT */
  url: string;
  /** The containers, by pod (workload) name. */
  containers: Map<string, string>;
  /** What ran, one line per pod: its image and what it was given. */
  summary: string[];
  stop(): Promise<void>;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Docker CPU and memory flags from Kubernetes limits (`500m` → 0.5, `512Mi` → 512m). */
function limits(l: { cpu?: string; memory?: string } = {}): string[] {
  const out: string[] = [];
  if (l.cpu) out.push('--cpus', String(l.cpu.endsWith('m') ? Number(l.cpu.slice(0, -1)) / 1000 : Number(l.cpu)));
  if (l.memory) {
    const m = /^(\d+)(Ki|Mi|Gi)$/.exec(l.memory);
    if (!m) throw new Error(`memory limit ${l.memory}: not in Ki, Mi or Gi`);
    out.push('--memory', `${m[1]}${{ Ki: 'k', Mi: 'm', Gi: 'g' }[m[2] as 'Ki' | 'Mi' | 'Gi']}`);
  }
  return out;
}

/** The readiness probe as a Docker health check (httpGet: bash's /dev/tcp, which the images have). */
function healthCheck(c: Container): string[] {
  const p = c.readinessProbe;
  if (!p) return [];
  let cmd: string;
  if (p.httpGet) {
    const port = typeof p.httpGet.port === 'number' ? p.httpGet.port : c.ports?.find((x) => x.name === p.httpGet!.port)?.containerPort;
    if (port === undefined) throw new Error(`${c.name}: probe port ${p.httpGet.port} is not a port of the container`);
    cmd = `bash -c ${shellQuote(
      `exec 3<>/dev/tcp/127.0.0.1/${port} && printf 'GET ${p.httpGet.path} HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ s _ <&3 && [ "$s" = 200 ]`,
    )}`;
  } else if (p.exec) cmd = p.exec.command.map(shellQuote).join(' ');
  else throw new Error(`${c.name}: a readiness probe of an unknown kind`);
  return ['--health-cmd', cmd, '--health-interval', `${p.periodSeconds ?? 10}s`, '--health-retries', '3', '--health-start-period', '60s'];
}

/** ingress-nginx's configuration for the release's Ingress objects, as an nginx.conf. */
function nginxConf(ingresses: K8sObject[], services: K8sObject[]): string {
  const portOf = (service: string, port: { name?: string; number?: number }): number => {
    if (port.number !== undefined) return port.number;
    const s = services.find((x) => x.metadata.name === service);
    const p = (s?.spec as { ports: { name?: string; port: number }[] } | undefined)?.ports.find((x) => x.name === port.name);
    if (!p) throw new Error(`Ingress backend ${service}:${port.name}: no such Service port`);
    return p.port;
  };
  const locations: string[] = [];
  for (const ing of ingresses) {
    const a = ing.metadata.annotations ?? {};
    const rewrite = a['nginx.ingress.kubernetes.io/rewrite-target'];
    const read = a['nginx.ingress.kubernetes.io/proxy-read-timeout'] ?? '60';
    const send = a['nginx.ingress.kubernetes.io/proxy-send-timeout'] ?? '60';
    const body = a['nginx.ingress.kubernetes.io/proxy-body-size'] ?? '1m';
    const rules = (
      ing.spec as {
        rules: {
          http: {
            paths: { path: string; pathType: string; backend: { service: { name: string; port: { name?: string; number?: number } } } }[];
          };
        }[];
      }
    ).rules;
    for (const rule of rules)
      for (const p of rule.http.paths) {
        const target = `http://${p.backend.service.name}:${portOf(p.backend.service.name, p.backend.service.port)}`;
        locations.push(`    location ${p.pathType === 'Exact' ? '= ' : '^~ '}${p.path} {
      set $upstream ${target};
      proxy_pass $upstream${rewrite ?? ''};
      proxy_read_timeout ${read}s;
      proxy_send_timeout ${send}s;
      client_max_body_size ${body};
    }`);
      }
  }
  return `pid /tmp/nginx.pid;
events {}
http {
  client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy; fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;
  resolver 127.0.0.11 valid=5s ipv6=off;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 8080;
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
${locations.join('\n')}
  }
}
`;
}

/**
 * Starts every pod of `objects` and an nginx for its Ingresses; resolves once every container is
 * healthy and nginx answers. `images` maps a rendered image name to the local tag to run instead.
 */
export async function play(objects: K8sObject[], images: (image: string) => string): Promise<Played> {
  const project = uniqueName('kube');
  const network = project;
  const dir = mkdtempSync(path.join(tmpdir(), 'codelab-kube-play-'));
  const containers = new Map<string, string>();
  const volumes = new Set<string>();
  const summary: string[] = [];
  const configMaps = new Map(objects.filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata.name, o.data ?? {}]));
  const secrets = new Map(
    objects
      .filter((o) => o.kind === 'Secret')
      .map((o) => [
        o.metadata.name,
        {
          ...(o.stringData ?? {}),
          ...Object.fromEntries(Object.entries(o.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])),
        },
      ]),
  );
  const services = objects.filter((o) => o.kind === 'Service');
  const stop = async () => {
    await removeAll({ containers: [...containers.values()], networks: [network], volumes: [...volumes] });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await dockerOk(['network', 'create', network]);
    for (const w of objects.filter((o): o is Workload => o.kind === 'Deployment' || o.kind === 'StatefulSet')) {
      const pod = w.spec.template.spec;
      const labels = w.spec.template.metadata.labels;
      if (pod.containers.length !== 1) throw new Error(`${w.metadata.name}: one container per pod is all this runs`);
      const c = pod.containers[0]!;
      const service = services.find((s) =>
        Object.entries((s.spec as { selector: Record<string, string> }).selector).every(([k, v]) => labels[k] === v),
      );
      const args: string[] = ['run', '-d', '--name', `${project}-${w.metadata.name}`, '--network', network, '--restart', 'on-failure'];
      if (service) args.push('--network-alias', service.metadata.name);
      const sc = { ...pod.securityContext, ...c.securityContext };
      if (sc.runAsUser !== undefined) args.push('--user', `${sc.runAsUser}:${sc.runAsGroup ?? sc.runAsUser}`);
      if (c.securityContext?.readOnlyRootFilesystem) args.push('--read-only');
      for (const cap of c.securityContext?.capabilities?.drop ?? []) args.push('--cap-drop', cap);
      if (c.securityContext?.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges:true');
      args.push(...limits(c.resources?.limits), ...healthCheck(c));
      const env = new Map<string, string>();
      for (const from of c.envFrom ?? []) {
        const data = from.configMapRef ? configMaps.get(from.configMapRef.name) : secrets.get(from.secretRef!.name);
        if (!data) throw new Error(`${w.metadata.name}: envFrom ${JSON.stringify(from)} names nothing rendered`);
        for (const [k, v] of Object.entries(data)) env.set(k, v);
      }
      for (const e of c.env ?? []) {
        if (e.value !== undefined) env.set(e.name, e.value);
        else if (e.valueFrom?.secretKeyRef) {
          const ref = e.valueFrom.secretKeyRef;
          const value = secrets.get(ref.name)?.[ref.key];
          if (value !== undefined) env.set(e.name, value);
          else if (!ref.optional)
            throw new Error(`${w.metadata.name}: ${e.name} from secret ${ref.name}/${ref.key}, which is not rendered`);
        }
      }
      const envFile = path.join(dir, `${w.metadata.name}.env`);
      writeFileSync(envFile, [...env].map(([k, v]) => `${k}=${v}`).join('\n'), { mode: 0o600 });
      args.push('--env-file', envFile);
      for (const m of c.volumeMounts ?? []) {
        const v = pod.volumes?.find((x) => x.name === m.name);
        if (v?.emptyDir) args.push('--tmpfs', m.mountPath);
        else if (v?.persistentVolumeClaim || w.spec.volumeClaimTemplates?.some((t) => t.metadata.name === m.name)) {
          const volume = `${project}-${v?.persistentVolumeClaim?.claimName ?? `${m.name}-${w.metadata.name}-0`}`;
          volumes.add(volume);
          args.push('-v', `${volume}:${m.mountPath}${m.readOnly ? ':ro' : ''}`);
        } else throw new Error(`${w.metadata.name}: volume ${m.name} of a kind this does not run`);
      }
      if (c.command) args.push('--entrypoint', c.command[0]!);
      args.push(images(c.image), ...(c.command?.slice(1) ?? []), ...(c.args ?? []));
      containers.set(w.metadata.name, (await dockerOk(args)).trim());
      summary.push(
        `${w.kind}/${w.metadata.name}: ${images(c.image)}, user ${sc.runAsUser}, ${env.size} env, limits ${JSON.stringify(c.resources?.limits ?? {})}`,
      );
    }
    // the Ingress controller
    const conf = path.join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      nginxConf(
        objects.filter((o) => o.kind === 'Ingress'),
        services,
      ),
    );
    const nginx = (
      await dockerOk([
        'run',
        '-d',
        '--name',
        `${project}-ingress`,
        '--network',
        network,
        '--read-only',
        '--tmpfs',
        '/tmp',
        '-v',
        `${conf}:/etc/nginx/nginx.conf:ro`,
        '-p',
        '127.0.0.1::8080',
        IMAGES.nginx,
      ])
    ).trim();
    containers.set('ingress', nginx);
    const port = (await dockerOk(['port', nginx, '8080'])).trim().split(':').at(-1);
    const url = `http://127.0.0.1:${port}`;
    await waitFor(
      `${project}: every pod ready (its readiness probe)`,
      async () => {
        const states = await docker([
          'inspect',
          '-f',
          '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}',
          ...containers.values(),
        ]);
        const lines = states.stdout.split('\n').filter(Boolean);
        return lines.length === containers.size && lines.every((l) => l === 'running healthy' || l === 'running none');
      },
      5 * 60_000,
      1000,
    );
    return { url, containers, summary, stop };
  } catch (err) {
    const logs: string[] = [];
    for (const [name, id] of containers) logs.push(`--- ${name}\n${(await docker(['logs', '--tail', '30', id])).stderr.slice(-3000)}`);
    await stop();
    throw new Error(`${(err as Error).message}\n${logs.join('\n')}`);
  }
}
