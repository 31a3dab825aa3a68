/**
 * One Compose stack of the repository's docker-compose.yml, as a user runs it, for the deploy suite
 * and the deploy benchmark: its images built from ./Dockerfile (on the stand-in Node base), its own
 * project, network, subnet and nginx port, random secrets in the environment (what `.env` holds for
 * a user), and small helpers to reach it through nginx and to look inside its containers.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { freePort } from '@codelab/service-kit/testing';
import { FrameClient } from '../helpers/stack.ts';
import { compose, dockerBuild, dockerOk, exec, IMAGES, uniqueName, waitFor, type Result } from './docker.ts';

export const SERVICE_IMAGES = ['auth', 'gateway', 'runtime', 'llm-proxy', 'web'] as const;
export type ServiceImage = (typeof SERVICE_IMAGES)[number];
/** The port each service's image listens on (Dockerfile ENV <P>__PORT). */
export const SERVICE_PORTS: Record<ServiceImage, number> = { auth: 8003, gateway: 8000, runtime: 8001, 'llm-proxy': 8002, web: 3000 };

/** The image tags the deploy suite builds (`CODELAB_IMAGE_PREFIX`/<service>:`CODELAB_VERSION`). */
const IMAGE_PREFIX = 'codelab-deploy-test';
const IMAGE_VERSION = 'test';
export const imageTag = (service: ServiceImage): string => `${IMAGE_PREFIX}/${service}:${IMAGE_VERSION}`;

/**
 * Builds the five service images from `context` (default: the repository) on the stand-in Node
 * base; resolves with the seconds it took. The deps stage is shared, so the builds share it.
 */
export async function buildImages(context?: string): Promise<number> {
  const started = Date.now();
  for (const service of SERVICE_IMAGES) {
    const r = await dockerBuild({ context, target: service, tags: [imageTag(service)], buildArgs: { BASE: IMAGES.node } });
    if (r.code !== 0) throw new Error(`docker build --target ${service} exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  }
  return (Date.now() - started) / 1000;
}

export interface Secrets {
  CODELAB_INTERNAL_API_KEY: string;
  POSTGRES_PASSWORD: string;
  AUTH_SERVICE__MASTER_KEY: string;
}

export class ComposeStack {
  readonly project: string;
  readonly secrets: Secrets;
  readonly env: Record<string, string>;
  readonly url: string;
  readonly ws: string;
  /** The Compose files (default: the repository's docker-compose.yml). */
  readonly files: string[] | undefined;

  private constructor(project: string, port: number, extraEnv: Record<string, string>, files?: string[]) {
    this.project = project;
    this.files = files;
    this.secrets = {
      CODELAB_INTERNAL_API_KEY: randomBytes(24).toString('base64url'),
      POSTGRES_PASSWORD: randomBytes(18).toString('hex'),
      AUTH_SERVICE__MASTER_KEY: randomBytes(15).toString('base64url'),
    };
    // a subnet of its own (parallel stacks, another daemon's networks): 10.214.N.0/24
    const n = randomInt(1, 250);
    this.env = {
      ...this.secrets,
      NGINX_PORT: String(port),
      CODELAB_NETWORK: project,
      CODELAB_SUBNET: `10.214.${n}.0/24`,
      CODELAB_IP_RANGE: `10.214.${n}.128/25`,
      NGINX_IP: `10.214.${n}.10`,
      CODELAB_IMAGE_PREFIX: IMAGE_PREFIX,
      CODELAB_VERSION: IMAGE_VERSION,
      ...extraEnv,
    };
    this.url = `http://127.0.0.1:${port}`;
    this.ws = `ws://127.0.0.1:${port}`;
  }

  /**
   * A stack not started yet (`up()` starts it); `files`: Compose files other than docker-compose.yml
   * alone; `port`: nginx's host port (a free one by default; a caller that publishes more ports takes
   * them all from one `freePorts`, so that none repeats).
   */
  static async create(extraEnv: Record<string, string> = {}, files?: string[], port?: number): Promise<ComposeStack> {
    return new ComposeStack(uniqueName('cl'), port ?? (await freePort()), extraEnv, files);
  }

  compose(args: string[], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Result> {
    return compose(this.project, args, { ...this.env, ...options.env }, { timeoutMs: options.timeoutMs, files: this.files });
  }

  async composeOk(args: string[], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<string> {
    const r = await this.compose(args, options);
    if (r.code !== 0)
      throw new Error(`docker-compose ${args.join(' ')} exited ${r.code}:\n${r.stderr.slice(-4000)}\n${r.stdout.slice(-2000)}`);
    return r.stdout;
  }

  /** `up -d --no-build [args]`, then waits until every container is healthy and nginx answers; resolves with the seconds it took. */
  async up(args: string[] = [], timeoutMs = 5 * 60_000): Promise<number> {
    const started = Date.now();
    await this.composeOk(['up', '-d', '--no-build', ...args], { timeoutMs }).catch(this.withHealthChecks);
    await this.waitHealthy(timeoutMs);
    return (Date.now() - started) / 1000;
  }

  /** Rethrows `err` with the last health check of every container not healthy (why Compose gave up). */
  private readonly withHealthChecks = async (err: Error): Promise<never> => {
    const states = await this.states().catch(() => []);
    const sick = states.filter((s) => s.health !== 'healthy' && s.health !== 'none');
    throw new Error(`${err.message}\n${sick.map((s) => `${s.name} ${s.health}, last health check: ${s.lastCheck}`).join('\n')}`);
  };

  /**
   * Waits until every container of the stack with a health check reports healthy (the others:
   * running) and nginx answers /gateway-health and /auth-health.
   */
  async waitHealthy(timeoutMs = 5 * 60_000): Promise<void> {
    await waitFor(
      `${this.project}: every container healthy`,
      async () => {
        const states = await this.states();
        return states.length > 0 && states.every((s) => s.running && (s.health === 'healthy' || s.health === 'none'));
      },
      timeoutMs,
      500,
    ).catch(this.withHealthChecks);
    await waitFor(
      `${this.project}: nginx answers`,
      async () => (await fetch(`${this.url}/gateway-health`)).ok && (await fetch(`${this.url}/auth-health`)).ok,
      60_000,
    );
  }

  /** Container ids of a service (every replica), or of the whole stack. */
  async ids(service?: string): Promise<string[]> {
    const out = await this.composeOk(['ps', '-q', ...(service ? [service] : [])]);
    return out
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  }

  /** State of every container of the stack (or of a service). */
  async states(service?: string): Promise<
    {
      id: string;
      name: string;
      service: string;
      running: boolean;
      health: string;
      restarts: number;
      exitCode: number;
      startedAt: string;
      oomKilled: boolean;
      /** The last health check: when, its exit code and output (`-` without one). */
      lastCheck: string;
    }[]
  > {
    const ids = await this.ids(service);
    if (ids.length === 0) return [];
    // JSON, not a template: `.State.Health` is missing on containers without a health check (Prometheus, Alertmanager)
    const out = await dockerOk(['inspect', '-f', '{{json .}}', ...ids]);
    return out.split('\n').map((line) => {
      const c = JSON.parse(line) as {
        Id: string;
        Name: string;
        RestartCount: number;
        Config: { Labels: Record<string, string> };
        State: {
          Running: boolean;
          ExitCode: number;
          StartedAt: string;
          OOMKilled: boolean;
          Health?: { Status: string; Log?: { Start: string; ExitCode: number; Output: string }[] };
        };
      };
      const last = c.State.Health?.Log?.at(-1);
      return {
        id: c.Id,
        name: c.Name.replace(/^\//, ''),
        service: c.Config.Labels['com.docker.compose.service'] ?? '',
        running: c.State.Running,
        health: c.State.Health?.Status ?? 'none',
        restarts: c.RestartCount,
        exitCode: c.State.ExitCode,
        startedAt: c.State.StartedAt,
        oomKilled: c.State.OOMKilled,
        lastCheck: last ? `${last.Start} exit ${last.ExitCode} ${JSON.stringify(last.Output.slice(0, 300))}` : '-',
      };
    });
  }

  /** GET http://127.0.0.1:PORT/PATH inside a service container (its internal port): status and body. */
  async inside(
    container: string,
    service: ServiceImage,
    pathname: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string }> {
    const script = `fetch('http://127.0.0.1:${SERVICE_PORTS[service]}${pathname}', { headers: ${JSON.stringify(headers)} }).then(async (r) => { process.stdout.write(r.status + '\\n' + (await r.text())); }, (e) => { process.stdout.write('0\\n' + e.message); })`;
    const r = await exec(container, ['node', '-e', script], { timeoutMs: 30_000 });
    const [status, ...rest] = r.stdout.split('\n');
    return { status: Number(status), body: rest.join('\n') };
  }

  async logs(): Promise<string> {
    const r = await this.compose(['logs', '--no-color']);
    return r.stdout + r.stderr;
  }

  /** `down -v`: containers, network and volumes gone. */
  async destroy(): Promise<void> {
    await this.compose(['down', '-v', '--remove-orphans', '--timeout', '5']);
  }

  /** The volumes Compose made for this project. */
  async volumes(): Promise<string[]> {
    const out = await dockerOk(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${this.project}`]);
    return out.split('\n').filter(Boolean);
  }

  /** A password-grant token of the seeded admin, through nginx. */
  async adminToken(): Promise<string> {
    const res = await fetch(`${this.url}/oauth/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'password',
        client_id: 'codelab-flutter-app',
        username: 'admin',
        password: this.secrets.AUTH_SERVICE__MASTER_KEY,
      }),
    });
    const body = (await res.json()) as { access_token?: string };
    if (res.status !== 200 || !body.access_token) throw new Error(`token through nginx: ${res.status} ${JSON.stringify(body)}`);
    return body.access_token;
  }

  /** A WebSocket through nginx (resuming after `lastSeq` when given), open. */
  async connect(token: string, sessionId: string, lastSeq?: number): Promise<FrameClient> {
    const query = lastSeq === undefined ? '' : `?last_seq=${lastSeq}`;
    const client = new FrameClient(
      `${this.ws}/api/v1/ws/${sessionId}${query}`,
      { authorization: `Bearer ${token}` },
      { timeoutMs: 60_000 },
    );
    await client.open();
    return client;
  }
}

export interface Turn {
  frames: Record<string, unknown>[];
  /** Milliseconds from sending the message to its first token. */
  ttftMs: number;
  final: Record<string, unknown>;
}

/** Sends one user message on an open client and waits for the turn's final frame. */
export async function turn(client: FrameClient, content: string, timeoutMs = 60_000): Promise<Turn> {
  const from = client.frames.length;
  const sent = performance.now();
  let ttftMs = Number.NaN;
  client.send({ type: 'user_message', content });
  await client
    .until((f) => typeof f.token === 'string', from, timeoutMs)
    .then(
      () => (ttftMs = performance.now() - sent),
      () => undefined,
    );
  const frames = await client.until((f) => f.is_final === true, from, timeoutMs);
  return { frames, ttftMs, final: frames.at(-1)! };
}
