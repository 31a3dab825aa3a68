/**
 * The mock's script language: directives `[[mock:<name> <args>]]` in the last user message, or in
 * `x-mock` request headers (same syntax, several per header). See services/llm-proxy/README.md.
 */
export interface MockScript {
  reply?: string;
  words?: number;
  toolCalls: { name: string; arguments: string }[];
  error?: { status: number; times?: number; model?: string };
  errorAfter?: { tokens: number; status: number };
  disconnectAfter?: number;
  stallMs?: number;
  stallAfter?: { tokens: number; ms: number };
  ttftMs?: number;
  tokenDelayMs?: number;
  /** Directive text of `error … times`, the key of its counter. */
  errorKey?: string;
  problems: string[];
}

const DIRECTIVE = /\[\[mock:([a-z_]+)(?:\s+([\s\S]*?))?\]\]/g;

function int(raw: string | undefined, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (!raw || !/^\d+$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= min && n <= max ? n : undefined;
}

export function stripDirectives(text: string): string {
  return text.replace(DIRECTIVE, '').replace(/\s+/g, ' ').trim();
}

export function parseDirectives(sources: readonly string[]): MockScript {
  const script: MockScript = { toolCalls: [], problems: [] };
  for (const text of sources) {
    for (const m of text.matchAll(DIRECTIVE)) {
      const name = m[1]!;
      const args = (m[2] ?? '').trim();
      const [a, b] = args.split(/\s+/);
      const bad = (): void => void script.problems.push(`bad directive ${m[0]}`);
      switch (name) {
        case 'reply':
          script.reply = args;
          break;
        case 'words':
          if ((script.words = int(a, 1, 100_000)) === undefined) bad();
          break;
        case 'tool_call': {
          const space = args.search(/\s/);
          const fn = space < 0 ? args : args.slice(0, space);
          const json = space < 0 ? '{}' : args.slice(space + 1).trim();
          try {
            JSON.parse(json);
            if (!/^[A-Za-z0-9_.-]+$/.test(fn)) throw new Error('name');
            script.toolCalls.push({ name: fn, arguments: json });
          } catch {
            bad();
          }
          break;
        }
        case 'error': {
          // error STATUS [TIMES] [model=NAME]
          const rest = args.split(/\s+/).slice(1);
          const status = int(a, 400, 599);
          const model = rest.find((r) => r.startsWith('model='))?.slice(6);
          const timesRaw = rest.find((r) => !r.startsWith('model='));
          const times = int(timesRaw, 1);
          if (status === undefined || (timesRaw !== undefined && times === undefined)) bad();
          else script.error = { status, ...(times !== undefined ? { times } : {}), ...(model ? { model } : {}) };
          break;
        }
        case 'error_after': {
          const tokens = int(a);
          if (tokens === undefined) bad();
          else script.errorAfter = { tokens, status: int(b, 400, 599) ?? 502 };
          break;
        }
        case 'disconnect_after':
          if ((script.disconnectAfter = int(a)) === undefined) bad();
          break;
        case 'stall':
          if ((script.stallMs = int(a)) === undefined) bad();
          break;
        case 'stall_after': {
          const tokens = int(a);
          const ms = int(b);
          if (tokens === undefined || ms === undefined) bad();
          else script.stallAfter = { tokens, ms };
          break;
        }
        case 'ttft':
          if ((script.ttftMs = int(a)) === undefined) bad();
          break;
        case 'token_delay':
          if ((script.tokenDelayMs = int(a)) === undefined) bad();
          break;
        default:
          bad();
      }
    }
  }
  return script;
}
