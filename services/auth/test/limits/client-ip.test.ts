import { describe, expect, it } from 'vitest';
import { canonicalIp, clientKey, createClientIpResolver } from '../../src/limits/client-ip.ts';

describe('client-ip', () => {
  describe('createClientIpResolver', () => {
    const resolve = createClientIpResolver(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '::1']);

    it('answers the peer when no proxy is trusted, whatever X-Forwarded-For says', () => {
      const none = createClientIpResolver([]);
      expect(none('10.1.2.3', '203.0.113.9')).toBe('10.1.2.3');
    });

    it('ignores a spoofed X-Forwarded-For from an untrusted peer', () => {
      expect(resolve('198.51.100.4', '203.0.113.9')).toBe('198.51.100.4');
      expect(resolve('198.51.100.4', ['203.0.113.9', '10.0.0.1'])).toBe('198.51.100.4');
    });

    it('answers the peer when a trusted proxy sends no X-Forwarded-For', () => {
      expect(resolve('10.0.0.5', undefined)).toBe('10.0.0.5');
    });

    it('takes the address a trusted proxy forwarded', () => {
      expect(resolve('10.0.0.5', '203.0.113.9')).toBe('203.0.113.9');
      expect(resolve('192.168.1.7', '203.0.113.9')).toBe('203.0.113.9');
    });

    it('does not trust a neighbour of a single trusted address', () => {
      expect(resolve('192.168.1.8', '203.0.113.9')).toBe('192.168.1.8');
    });

    it('walks multi-hop lists from the right, skipping trusted proxies, and ignores what the client prepended', () => {
      // client-written junk, the client, then two proxies of ours
      expect(resolve('10.0.0.5', '1.1.1.1, 203.0.113.9, 10.2.0.1, 10.3.0.1')).toBe('203.0.113.9');
      // a client that claims to be one of our proxies is still just its own address
      expect(resolve('10.0.0.5', '10.9.9.9, 198.51.100.23')).toBe('198.51.100.23');
    });

    it('joins repeated X-Forwarded-For headers in order', () => {
      expect(resolve('10.0.0.5', ['6.6.6.6, 203.0.113.9', '10.2.0.1'])).toBe('203.0.113.9');
    });

    it('answers the leftmost address when every hop is trusted', () => {
      expect(resolve('10.0.0.5', '10.1.0.1, 10.2.0.1')).toBe('10.1.0.1');
    });

    it('stops at a malformed entry and answers the last trusted hop', () => {
      expect(resolve('10.0.0.5', '203.0.113.9, not-an-ip')).toBe('10.0.0.5');
      expect(resolve('10.0.0.5', '203.0.113.9, bogus, 10.2.0.1')).toBe('10.2.0.1');
      expect(resolve('10.0.0.5', '203.0.113.9, , 10.2.0.1')).toBe('10.2.0.1');
      expect(resolve('10.0.0.5', '203.0.113.9:4711')).toBe('10.0.0.5');
      expect(resolve('10.0.0.5', '999.1.1.1')).toBe('10.0.0.5');
    });

    it('trusts IPv6 CIDRs and answers IPv6 clients canonically', () => {
      expect(resolve('fd12:3456::1', '2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
      expect(resolve('::1', '2001:db8::7')).toBe('2001:db8::7');
      expect(resolve('fe80::1', '203.0.113.9')).toBe('fe80::1');
    });

    it('treats IPv4-mapped IPv6 peers and hops as IPv4', () => {
      expect(resolve('::ffff:10.0.0.5', '203.0.113.9')).toBe('203.0.113.9');
      expect(resolve('::ffff:198.51.100.4', '203.0.113.9')).toBe('198.51.100.4');
      expect(resolve('10.0.0.5', '::ffff:203.0.113.9, ::ffff:10.2.0.1')).toBe('203.0.113.9');
    });

    it('trusts IPv4 entries given in mapped form, and mapped CIDRs', () => {
      const mapped = createClientIpResolver(['::ffff:127.0.0.1', '::ffff:172.16.0.0/108']);
      expect(mapped('127.0.0.1', '203.0.113.9')).toBe('203.0.113.9');
      expect(mapped('::ffff:127.0.0.1', '203.0.113.9')).toBe('203.0.113.9');
      expect(mapped('172.31.255.254', '203.0.113.9')).toBe('203.0.113.9');
      expect(mapped('172.32.0.1', '203.0.113.9')).toBe('172.32.0.1');
    });

    it('answers a peer that is not an address unchanged', () => {
      expect(resolve('', '203.0.113.9')).toBe('');
    });

    it('rejects malformed trusted-proxy entries, naming them', () => {
      for (const bad of ['10.0.0.0/33', 'fd00::/129', 'proxy.local', '10.0.0.0/8/1', '10.0.0.0/x', '10.0.0.0/']) {
        expect(() => createClientIpResolver([bad]), bad).toThrow(new RegExp(`'${bad.replace(/[./]/g, '\\$&')}'`));
      }
    });
  });

  describe('canonicalIp', () => {
    it('canonicalizes IPv6 per RFC 5952 and maps IPv4-mapped addresses to IPv4', () => {
      expect(canonicalIp('2001:0DB8:0000:0000:0001:0000:0000:0001')).toBe('2001:db8::1:0:0:1');
      expect(canonicalIp('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
      expect(canonicalIp('::')).toBe('::');
      expect(canonicalIp('fe80::1%eth0')).toBe('fe80::1');
      expect(canonicalIp('::FFFF:7f00:1')).toBe('127.0.0.1');
      expect(canonicalIp('64:ff9b::192.0.2.33')).toBe('64:ff9b::c000:221');
      expect(canonicalIp('01.2.3.4')).toBeUndefined();
      expect(canonicalIp('1::2::3')).toBeUndefined();
    });
  });

  describe('clientKey', () => {
    it('keeps IPv4 and folds IPv6 to its /64', () => {
      expect(clientKey('203.0.113.9')).toBe('203.0.113.9');
      expect(clientKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
      expect(clientKey('2001:db8:1:2:bbbb::9')).toBe(clientKey('2001:db8:1:2:aaaa::1'));
      expect(clientKey('2001:db8:1:3::1')).not.toBe(clientKey('2001:db8:1:2::1'));
    });
  });
});
