import { boot } from '@codelab/service-kit/boot';
import { readRuntimeConfig } from './config.ts';

await boot('runtime', readRuntimeConfig, () => import('./app.ts').then((m) => m.buildApp));
