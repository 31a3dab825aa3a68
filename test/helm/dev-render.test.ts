/**
 * The development render of the chart, run for real: its Deployments and StatefulSets from the
 * images built here (kube-play.ts: each pod a Docker container as a kubelet would start it, its
 * Ingresses an nginx configured as ingress-nginx would be), then through the Ingress: the health
 * paths, a token for the seeded admin (the password the chart generated into its Secret), and a
 * streamed conversation over the WebSocket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameClient } from '../helpers/stack.ts';
import { buildImages, imageTag, SERVICE_IMAGES, turn } from '../deploy/compose-stack.ts';
import { dockerMissing, dockerOk, ensureStandIns, IMAGES } from '../deploy/docker.ts';
import { type K8sObject, render } from './helm-tools.ts';
import { play, type Played } from './kube-play.ts';

const missing = dockerMissing({ compose: false });

describe.skipIf(missing)('the development render, run under Docker', () => {
  let objects: K8sObject[];
  let played: Played;

  beforeAll(async () => {
    await ensureStandIns(['node', 'postgres', 'redis', 'nginx']);
    await buildImages();
    objects = await render('dev', ['--set', 'image.registry=codelab', '--set', 'image.tag=dev-render']);
    // the rendered image names → the images built here (and the stand-ins of the official ones)
    const local = (image: string): string => {
      const service = SERVICE_IMAGES.find((s) => image === `codelab/${s}:dev-render`);
      if (service) return imageTag(service);
      if (image === 'postgres:16') return IMAGES.postgres;
      if (image === 'redis:7') return IMAGES.redis;
      throw new Error(`the render names an image not built here: ${image}`);
    };
    played = await play(objects, local);
    process.stderr.write(`dev render: ${played.summary.join('\n  ')}\n`);
  }, 20 * 60_000);

  afterAll(async () => {
    await played?.stop();
  });

  it('runs every Deployment and StatefulSet of the render, each as its pod spec says', async () => {
    const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet').map((o) => o.metadata.name);
    expect(workloads.sort()).toEqual([
      'codelab-auth',
      'codelab-gateway',
      'codelab-llm-proxy',
      'codelab-postgresql',
      'codelab-redis',
      'codelab-runtime',
    ]);
    for (const name of workloads) {
      const id = played.containers.get(name)!;
      const [user, readOnly, caps] = (
        await dockerOk(['inspect', '-f', '{{.Config.User}}|{{.HostConfig.ReadonlyRootfs}}|{{.HostConfig.CapDrop}}', id])
      )
        .trim()
        .split('|');
      expect([user, readOnly, caps], name).toEqual([
        name.endsWith('postgresql') || name.endsWith('redis') ? '999:999' : '1000:1000',
        'true',
        '[ALL]',
      ]);
    }
  });

  it('answers the health paths through the Ingress, each rewritten to its service', async () => {
    for (const p of ['/gateway-health', '/auth-health']) {
      const res = await fetch(`${played.url}${p}`);
      expect(res.status, p).toBe(200);
      expect(await res.json(), p).toMatchObject({ status: 'healthy', service: p.startsWith('/gateway') ? 'gateway' : 'auth' });
    }
    expect((await fetch(`${played.url}/.well-known/jwks.json`)).status).toBe(200);
  });

  it("logs in with the admin password the chart generated, and holds a streamed conversation over the Ingress's WebSocket", async () => {
    const secret = objects.find((o) => o.kind === 'Secret')!;
    const password = secret.stringData!['admin-password']!;
    const res = await fetch(`${played.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'password',
        username: 'admin',
        password,
        client_id: 'codelab-flutter-app',
        scope: 'api:read api:write',
      }),
    });
    expect(res.status).toBe(200);
    const { access_token: token } = (await res.json()) as { access_token: string };
    const client = new FrameClient(`${played.url.replace(/^http/, 'ws')}/api/v1/ws/new_dev_render`, { authorization: `Bearer ${token}` });
    await client.open();
    const t = await turn(client, 'hello through the chart [[mock:reply the chart works]]');
    expect(t.final).toMatchObject({ type: 'assistant_message', content: 'the chart works', is_final: true });
    expect(t.frames.some((f) => f.type === 'session_info')).toBe(true);
    client.close();
  });
});
