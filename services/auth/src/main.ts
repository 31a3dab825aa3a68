import { boot } from '@codelab/service-kit/boot';
import { readAuthConfig } from './config.ts';

await boot('auth', readAuthConfig, () => import('./app.ts').then((m) => m.buildApp));
