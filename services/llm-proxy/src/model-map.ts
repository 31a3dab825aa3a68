/**
 * The model map: public model names → upstream models, tried in order (the first is the primary,
 * the rest are fallbacks). Read from `LLM_PROXY__MODEL_MAP_FILE`:
 *
 *   { "models": { "gpt-4o": { "upstream": "openai/gpt-4o", "fallbacks": ["openai/gpt-4o-mini"] } } }
 *
 * Without the file, every name of `LLM_PROXY__MODELS` maps to itself. The public names are the
 * served model list and the metric label allow-list.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '@codelab/service-kit';

export interface ModelRoute {
  /** Public name, as clients ask for it. */
  name: string;
  /** Upstream model names in the order they are tried. */
  targets: string[];
}

export type ModelMap = ReadonlyMap<string, ModelRoute>;

function parseModelMap(json: unknown, source = 'model map'): ModelMap {
  const models = (json as { models?: unknown } | null)?.models;
  if (!models || typeof models !== 'object' || Array.isArray(models))
    throw new ConfigError([`${source}: expected {"models": {"<public name>": {"upstream": "...", "fallbacks": [...]}}}`]);
  const map = new Map<string, ModelRoute>();
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(models as Record<string, unknown>)) {
    const s = (typeof spec === 'string' ? { upstream: spec } : spec) as { upstream?: unknown; fallbacks?: unknown } | null;
    const upstream = s?.upstream ?? name;
    const fallbacks = s?.fallbacks ?? [];
    if (typeof upstream !== 'string' || !upstream || !Array.isArray(fallbacks) || !fallbacks.every((f) => typeof f === 'string' && f)) {
      problems.push(`${source}: model "${name}" needs "upstream" (a string) and "fallbacks" (a list of strings)`);
      continue;
    }
    map.set(name, { name, targets: [upstream, ...(fallbacks as string[])] });
  }
  if (problems.length) throw new ConfigError(problems);
  if (map.size === 0) throw new ConfigError([`${source}: no models`]);
  return map;
}

export function loadModelMap(file: string | undefined, models: readonly string[]): ModelMap {
  if (!file) return new Map(models.map((name) => [name, { name, targets: [name] }]));
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`LLM_PROXY__MODEL_MAP_FILE=${file} cannot be read: ${(err as Error).message}`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`LLM_PROXY__MODEL_MAP_FILE=${file} is not JSON: ${(err as Error).message}`]);
  }
  return parseModelMap(json, `LLM_PROXY__MODEL_MAP_FILE=${file}`);
}
