/**
 * Writes every dashboard to `dashboards/generated/<uid>.json` (committed; Grafana provisions them
 * from there) and removes generated files of dashboards that no longer exist. `npm run dashboards`.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GENERATED_DIR } from './src/lib.ts';
import { renderDashboards } from './src/index.ts';

const files = renderDashboards();
mkdirSync(GENERATED_DIR, { recursive: true });
for (const old of readdirSync(GENERATED_DIR)) {
  if (old.endsWith('.json') && !files.has(old)) rmSync(join(GENERATED_DIR, old));
}
for (const [name, content] of files) writeFileSync(join(GENERATED_DIR, name), content);
process.stdout.write(`wrote ${files.size} dashboards to ${GENERATED_DIR}: ${[...files.keys()].join(', ')}\n`);
