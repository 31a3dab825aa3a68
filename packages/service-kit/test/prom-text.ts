/**
 * Reads samples out of a Prometheus / OpenMetrics text rendering, so tests can assert exact values.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** The exemplar after ` # `, as written (OpenMetrics only). */
  exemplar: { labels: Record<string, string>; value: number } | undefined;
}

const LINE = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)(?: # \{([^}]*)\} (\S+)(?: \S+)?)?$/;

function parseLabels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of (text ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!;
  return out;
}

function samples(body: string): Sample[] {
  const out: Sample[] = [];
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`unparseable sample line: ${line}`);
    out.push({
      name: m[1]!,
      labels: parseLabels(m[2]),
      value: Number(m[3]),
      exemplar: m[4] === undefined ? undefined : { labels: parseLabels(m[4]), value: Number(m[5]) },
    });
  }
  return out;
}

/** The samples named `name` whose labels include `labels`. */
export function find(body: string, name: string, labels: Record<string, string> = {}): Sample[] {
  return samples(body).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The value of the one sample named `name` with these labels (undefined when absent; throws when ambiguous). */
export function value(body: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = find(body, name, labels);
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** The `# TYPE` lines, as name → type. */
export function types(body: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}
