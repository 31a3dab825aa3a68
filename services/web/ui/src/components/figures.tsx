/**
 * Figures of the admin reports as tables, whatever their keys: a flat map as name/value rows, a
 * map of maps as one row per name and one column per inner key.
 */
import { ScrollRegion } from './scroll-region.tsx';
const label = (key: string) => key.replaceAll('_', ' ');

function show(value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(3).replace(/\.?0+$/, '');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** name → value rows. */
export function FlatFigures({ values, caption }: { values: Record<string, unknown>; caption: string }) {
  const keys = Object.keys(values);
  return (
    <table class="figures">
      <caption>{caption}</caption>
      <tbody>
        {keys.length === 0 && (
          <tr>
            <td class="muted">none yet</td>
          </tr>
        )}
        {keys.map((key) => (
          <tr key={key}>
            <th scope="row">{label(key)}</th>
            <td class="number">{show(values[key])}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A report group: flat when its values are plain, else one column per inner key. */
export function GroupFigures({ values, caption }: { values: Record<string, unknown>; caption: string }) {
  const rows = Object.entries(values);
  if (!rows.every(([, v]) => v && typeof v === 'object')) return <FlatFigures values={values} caption={caption} />;
  const columns = [...new Set(rows.flatMap(([, v]) => Object.keys(v as object)))];
  return (
    <ScrollRegion label={caption}>
      <table class="figures">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">name</th>
            {columns.map((c) => (
              <th scope="col" key={c}>
                {label(c)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map(([name, v]) => (
            <tr key={name}>
              <th scope="row">{name}</th>
              {columns.map((c) => (
                <td class="number" key={c}>
                  {show((v as Record<string, unknown>)[c])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollRegion>
  );
}
