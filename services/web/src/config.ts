import { commonSettings, defineSettings, readConfig, setting } from '@codelab/service-kit/boot';

export const webSettings = defineSettings({
  ...commonSettings({ port: 3000 }),
  /** The website calls no internal endpoint: its internal key is optional. */
  internalApiKey: setting.string({ secret: true }),
  /** Where the browser reaches auth and the gateway; empty: the page's own origin (behind nginx). */
  authUrl: setting.string({ fallback: '' }),
  gatewayUrl: setting.string({ fallback: '' }),
  /** Where this server reaches each service's /health and /ready for the operations view (`name=url,…`). */
  opsTargets: setting.list({
    fallback: [
      'auth=http://127.0.0.1:8003',
      'gateway=http://127.0.0.1:8000',
      'runtime=http://127.0.0.1:8001',
      'llm-proxy=http://127.0.0.1:8002',
    ],
  }),
  /** Prometheus, for the SLOs' error budget left (its recording rules); unset: not shown. */
  prometheusUrl: setting.url({ env: 'PROMETHEUS_URL' }),
  /** The built page (vite build of ui/), and the folder holding README.md and docs/. */
  uiDir: setting.string({ fallback: '' }),
  docsDir: setting.string({ fallback: '' }),
});

export function readWebConfig(env: NodeJS.ProcessEnv = process.env) {
  return readConfig('WEB', webSettings, env);
}

export type WebConfig = ReturnType<typeof readWebConfig>;
