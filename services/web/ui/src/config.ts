/**
 * Where auth and the gateway are, as the web server says (`GET /config.json`). Loaded once before
 * the app renders; an empty URL means the page's own origin (nginx in front of everything).
 */
interface ConsoleConfig {
  authUrl: string;
  gatewayUrl: string;
  clientId: string;
  version: string;
}

let loaded: ConsoleConfig | undefined;

function originOr(url: string): string {
  return (url || window.location.origin).replace(/\/+$/, '');
}

export async function loadConfig(): Promise<ConsoleConfig> {
  const res = await fetch('/config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`/config.json answered ${res.status}`);
  const body = (await res.json()) as Partial<ConsoleConfig>;
  loaded = {
    authUrl: originOr(body.authUrl ?? ''),
    gatewayUrl: originOr(body.gatewayUrl ?? ''),
    clientId: body.clientId || 'codelab-flutter-app',
    version: body.version ?? '',
  };
  return loaded;
}

/** The loaded configuration; main.tsx loads it before anything can ask. */
export function config(): ConsoleConfig {
  if (!loaded) throw new Error('the configuration is not loaded yet');
  return loaded;
}

/** The gateway's WebSocket origin: ws: for http:, wss: for https:. */
export function gatewayWsOrigin(): string {
  return config().gatewayUrl.replace(/^http/, 'ws');
}
