import { boot } from '@codelab/service-kit/boot';
import { readGatewayConfig } from './config.ts';

await boot('gateway', readGatewayConfig, () => import('./app.ts').then((m) => m.buildApp));
