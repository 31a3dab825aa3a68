/**
 * The client's address behind trusted proxies (upstream §6 item 4: upstream trusted a
 * client-supplied `X-Forwarded-For[0]` for rate limits and nginx's address for lockouts).
 *
 * `X-Forwarded-For` is read only when the socket peer is a configured trusted proxy. Each proxy
 * appends the address it received the request from, so the list is walked from the right: trusted
 * proxies are skipped and the first address that is not one is the client. Anything left of it was
 * written by that client and proves nothing. A malformed entry stops the walk: the last trusted hop
 * is answered, since nothing beyond it can be believed.
 *
 * Addresses come back canonical: IPv4-mapped IPv6 (`::ffff:127.0.0.1`) as IPv4, IPv6 lower-case and
 * compressed (RFC 5952), zone ids dropped, so one client always has one spelling in counters and
 * audit rows. Entries must be bare addresses (`host:port` or `[v6]:port` forms are malformed).
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export type ClientIpResolver = (peer: string, forwardedFor: string | string[] | undefined) => string;

/**
 * @param trustedProxies IPs or CIDRs, IPv4 or IPv6 (`10.0.0.0/8`, `fd00::/8`, `::ffff:10.0.0.1`).
 *   Empty: `X-Forwarded-For` is never read. A malformed entry throws a TypeError naming it.
 */
export function createClientIpResolver(trustedProxies: readonly string[]): ClientIpResolver {
  const trusted = new BlockList();
  for (const entry of trustedProxies) addTrusted(trusted, entry);
  const isTrusted = (ip: string): boolean => trusted.check(ip, isIPv4(ip) ? 'ipv4' : 'ipv6');

  return (peer, forwardedFor) => {
    let client = canonicalIp(peer);
    // Not an address (a Unix socket): nothing to trust, nothing better to say.
    if (client === undefined) return peer;
    if (trustedProxies.length === 0 || forwardedFor === undefined || !isTrusted(client)) return client;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = canonicalIp(hops[i]!.trim());
      if (hop === undefined) break;
      client = hop;
      if (!isTrusted(hop)) break;
    }
    return client;
  };
}

function addTrusted(list: BlockList, entry: string): void {
  const invalid = (): TypeError => new TypeError(`trusted proxy '${entry}' is not an IP address or CIDR`);
  const [address = '', prefixText, ...rest] = entry.trim().split('/');
  const ip = canonicalIp(address);
  if (ip === undefined || rest.length > 0) throw invalid();
  const family = isIPv4(ip) ? 'ipv4' : 'ipv6';
  if (prefixText === undefined) {
    list.addAddress(ip, family);
    return;
  }
  if (!/^\d{1,3}$/.test(prefixText)) throw invalid();
  let prefix = Number(prefixText);
  // `::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8.
  if (family === 'ipv4' && isIPv6(address.split('%')[0]!)) prefix -= 96;
  if (prefix < 0 || prefix > (family === 'ipv4' ? 32 : 128)) throw invalid();
  list.addSubnet(ip, prefix, family);
}

/**
 * The canonical spelling of an IP address, or undefined when `value` is not one. IPv4-mapped IPv6
 * becomes IPv4; IPv6 is lower-case and RFC 5952 compressed, without a zone id.
 */
export function canonicalIp(value: string): string | undefined {
  if (isIPv4(value)) return value;
  const words = parseIPv6(value);
  if (!words) return undefined;
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `${words[6]! >> 8}.${words[6]! & 0xff}.${words[7]! >> 8}.${words[7]! & 0xff}`;
  }
  return formatIPv6(words);
}

/**
 * The key that stands for a client in counters: the address for IPv4, the /64 network for IPv6 (a
 * single host usually holds a whole /64, so per-address counting would cost it nothing to evade).
 * `ip` should be canonical (what the resolver answers); anything else is returned unchanged.
 */
export function clientKey(ip: string): string {
  if (!isIPv6(ip)) return ip;
  const words = parseIPv6(ip);
  if (!words) return ip;
  return `${formatIPv6([...words.slice(0, 4), 0, 0, 0, 0])}/64`;
}

function parseIPv6(value: string): number[] | undefined {
  const address = value.split('%')[0]!;
  if (!isIPv6(address)) return undefined;
  let text = address.toLowerCase();
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) stands for the last two words.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::') as [string, string | undefined];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const missing = 8 - left.length - right.length;
  if (rest === undefined ? missing !== 0 : missing < 0) return undefined;
  return [...left, ...new Array<number>(missing).fill(0), ...right];
}

/** RFC 5952: lower-case hex, no leading zeros, the longest run (≥ 2) of zero words as `::`. */
function formatIPv6(words: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
