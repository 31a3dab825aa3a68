import { boot } from '@codelab/service-kit/boot';
import { readWebConfig } from './config.ts';

await boot('web', readWebConfig, () => import('./app.ts').then((m) => m.buildApp));
