/**
 * Line charts as inline SVG, drawn here so the report needs no script and no network: axes with
 * rounded ticks, one path per series (broken where a bucket has no value), dashed threshold limits,
 * a legend, and one transparent band per time bucket whose tooltip lists every series' value.
 */

interface ChartSeries {
  name: string;
  color: string;
  values: (number | null)[];
  dashed?: boolean;
  /** Fill the area under the line. */
  area?: boolean;
}

export interface ChartSpec {
  id: string;
  title: string;
  /** Bucket starts (seconds). */
  t: number[];
  bucketSeconds: number;
  series: ChartSeries[];
  /** Axis unit: `ms` formats as ms/s, `/s` as a rate. */
  unit: 'ms' | '/s' | '';
  limits?: { label: string; value: number }[];
  width?: number;
  height?: number;
}

export const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A round axis maximum and step: 1, 2, 2.5 or 5 × 10^k. */
export function niceScale(max: number, ticks = 5): { max: number; step: number } {
  if (!(max > 0)) return { max: 1, step: 0.25 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

export function formatValue(v: number, unit: ChartSpec['unit']): string {
  if (unit === 'ms') return v >= 1000 ? `${+(v / 1000).toFixed(2)}s` : `${+v.toFixed(v < 10 ? 2 : 0)}ms`;
  const s = Math.abs(v) >= 100 ? v.toFixed(0) : `${+v.toFixed(2)}`;
  return unit === '/s' ? `${s}/s` : s;
}

export const formatTime = (s: number): string => {
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
};

export function renderChart(spec: ChartSpec): string {
  const W = spec.width ?? 920;
  const H = spec.height ?? 260;
  const L = 64;
  const R = 16;
  const T = 34;
  const B = 30;
  const pw = W - L - R;
  const ph = H - T - B;
  const n = spec.t.length;
  const span = Math.max(spec.bucketSeconds, n * spec.bucketSeconds);
  const limits = spec.limits ?? [];
  const values = spec.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const dataMax = Math.max(0, ...values);
  const limitMax = Math.max(0, ...limits.map((l) => l.value));
  // show a limit when the data comes near it; never squash the data under a far-away limit
  const { max, step } = niceScale(Math.max(dataMax, limitMax <= dataMax * 3 ? limitMax : 0) * 1.08 || 1);
  // a point sits in the middle of its bucket
  const x = (i: number): number => L + (((i + 0.5) * spec.bucketSeconds) / span) * pw;
  const y = (v: number): number => T + ph - (Math.min(v, max) / max) * ph;
  const out: string[] = [];
  out.push(
    `<svg class="chart" id="${esc(spec.id)}" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(spec.title)}" xmlns="http://www.w3.org/2000/svg">`,
  );
  out.push(`<text class="chart-title" x="${L}" y="16">${esc(spec.title)}</text>`);
  // legend, right-aligned on the title line
  let lx = W - R;
  const legend: string[] = [];
  for (const s of [...spec.series].reverse()) {
    const w = 26 + s.name.length * 6.6;
    lx -= w;
    legend.push(
      `<g class="legend-item"><line x1="${lx}" y1="12" x2="${lx + 16}" y2="12" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/><text x="${lx + 20}" y="16">${esc(s.name)}</text></g>`,
    );
  }
  out.push(`<g class="legend">${legend.reverse().join('')}</g>`);
  // grid and y axis
  for (let v = 0; v <= max + 1e-9; v += step) {
    const yy = y(v).toFixed(1);
    out.push(
      `<line class="grid" x1="${L}" y1="${yy}" x2="${W - R}" y2="${yy}"/><text class="tick" x="${L - 6}" y="${(+yy + 4).toFixed(1)}" text-anchor="end">${esc(formatValue(v, spec.unit))}</text>`,
    );
  }
  // x axis: about 8 labels on round times
  const tStep = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].find((s) => span / s <= 9) ?? 3600;
  for (let s = 0; s <= span + 1e-9; s += tStep) {
    const xx = (L + (s / span) * pw).toFixed(1);
    out.push(
      `<line class="xtick" x1="${xx}" y1="${T + ph}" x2="${xx}" y2="${T + ph + 4}"/><text class="tick" x="${xx}" y="${T + ph + 17}" text-anchor="middle">${formatTime(s)}</text>`,
    );
  }
  out.push(`<line class="axis" x1="${L}" y1="${T + ph}" x2="${W - R}" y2="${T + ph}"/>`);
  // threshold limits
  for (const l of limits) {
    if (l.value > max) continue;
    const yy = y(l.value).toFixed(1);
    out.push(
      `<g class="limit"><line x1="${L}" y1="${yy}" x2="${W - R}" y2="${yy}"/><text x="${W - R - 4}" y="${(+yy - 4).toFixed(1)}" text-anchor="end">threshold ${esc(l.label)}</text></g>`,
    );
  }
  // series
  let drawn = 0;
  for (const s of spec.series) {
    const parts: string[] = [];
    const areas: string[] = [];
    let run: [number, number][] = [];
    const flush = (): void => {
      if (run.length === 0) return;
      // a lone point still shows: a short flat segment across its bucket
      const pts: [number, number][] =
        run.length === 1
          ? [
              [run[0]![0] - 2, run[0]![1]],
              [run[0]![0] + 2, run[0]![1]],
            ]
          : run;
      parts.push(`M${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join('L')}`);
      if (s.area)
        areas.push(
          `M${pts[0]![0].toFixed(1)},${T + ph}L${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join('L')}L${pts.at(-1)![0].toFixed(1)},${T + ph}Z`,
        );
      drawn += run.length;
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) flush();
      else run.push([x(i), y(v)]);
    });
    flush();
    const points = s.values.filter((v) => v !== null).length;
    if (areas.length) out.push(`<path class="area" d="${areas.join('')}" fill="${s.color}"/>`);
    if (parts.length) {
      out.push(
        `<path class="series" data-series="${esc(s.name)}" data-points="${points}" d="${parts.join('')}" stroke="${s.color}"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`,
      );
    }
  }
  if (drawn === 0) out.push(`<text class="nodata" x="${L + pw / 2}" y="${T + ph / 2}" text-anchor="middle">no data</text>`);
  // hover bands: one per bucket, its tooltip lists the values
  const bw = (spec.bucketSeconds / span) * pw;
  for (let i = 0; i < n; i++) {
    const lines = spec.series.map(
      (s) => `${s.name}: ${s.values[i] === null || s.values[i] === undefined ? '–' : formatValue(s.values[i]!, spec.unit)}`,
    );
    out.push(
      `<rect class="band" x="${(L + i * bw).toFixed(1)}" y="${T}" width="${Math.max(bw, 0.5).toFixed(2)}" height="${ph}"><title>${esc(`${formatTime(spec.t[i]!)}–${formatTime(spec.t[i]! + spec.bucketSeconds)}\n${lines.join('\n')}`)}</title></rect>`,
    );
  }
  out.push('</svg>');
  return out.join('\n');
}
