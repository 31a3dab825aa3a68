import { boot } from '@codelab/service-kit/boot';
import { readLlmProxyConfig } from './config.ts';

await boot('llm-proxy', readLlmProxyConfig, () => import('./app.ts').then((m) => m.buildApp));
