/** `npm run loadtests`: writes loadtests/generated/thresholds.json from alerts/slos.yaml. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSlos } from '../../alerts/src/rules.ts';
import { thresholdsFromSlos } from './thresholds.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const THRESHOLDS_FILE = path.join(ROOT, 'loadtests', 'generated', 'thresholds.json');

export function renderThresholds(): string {
  const { slos } = loadSlos(path.join(ROOT, 'alerts', 'slos.yaml'));
  return `${JSON.stringify(thresholdsFromSlos(slos), null, 2)}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(THRESHOLDS_FILE, renderThresholds());
  console.log(`wrote ${path.relative(ROOT, THRESHOLDS_FILE)}`);
}
