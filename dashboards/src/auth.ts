/** Auth: token requests and issuance latency, brute-force defence, refresh token reuse, signing keys, limiter backend. */
import { RowBuilder, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { codelabDashboard, finish, labelVariable, latency, stat, timeseries, UNITS } from './lib.ts';
import * as q from './queries/auth.ts';

export const uid = 'codelab-auth';

const DAY = 86_400;

export function authDashboard(): Dashboard {
  return finish(
    codelabDashboard(
      uid,
      'CodeLab / Auth',
      'The OAuth 2 token service: token requests and issuance latency, lockouts and rate limits, refresh token reuse, revocations, signing keys and the limiter’s store.',
      ['auth'],
    )
      .withVariable(labelVariable('grant_type', 'auth_token_requests_total', 'grant_type', 'OAuth 2 grant type'))
      .withRow(new RowBuilder('Tokens'))
      .withPanel(
        timeseries({
          title: 'Token requests by grant and outcome',
          description: 'Requests to POST /oauth/token per second by grant type and outcome (success or the RFC 6749 error code).',
          unit: UNITS.reqps,
          queries: [{ expr: q.tokenRequestsByOutcome(), legend: '{{grant_type}} {{outcome}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Server error ratio',
          description: 'Share of token requests answered with server_error, by grant type (the token issuance availability SLI).',
          unit: UNITS.percentUnit,
          queries: [{ expr: q.tokenServerErrorRatio(), legend: '{{grant_type}}' }],
          min: 0,
          w: 8,
        }),
      )
      .withPanel(
        latency({
          title: 'Issuance latency',
          description:
            'Duration of successful token requests, from the parsed request to the signed and recorded token(s), by grant type (p50, p95, p99). The password grant spends about 100 ms in scrypt.',
          queries: [
            { expr: q.issueDuration(0.5), legend: '{{grant_type}} p50' },
            { expr: q.issueDuration(0.95), legend: '{{grant_type}} p95' },
            { expr: q.issueDuration(0.99), legend: '{{grant_type}} p99' },
          ],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Revocations by outcome',
          description: 'Requests to POST /oauth/revoke per second by outcome.',
          unit: UNITS.reqps,
          queries: [{ expr: q.revocationsByOutcome(), legend: '{{outcome}}' }],
        }),
      )
      .withPanel(
        timeseries({
          title: 'Refresh token reuse',
          description:
            'Refresh tokens presented again after rotation or revocation, per second. Each revokes its lineage; a burst suggests stolen tokens or a client that retries a refresh.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.refreshReuse(), legend: 'reuse detected' }],
        }),
      )
      .withRow(new RowBuilder('Brute-force defence'))
      .withPanel(
        timeseries({
          title: 'Lockouts',
          description: 'Login lockouts begun per second, by scope (username or client IP).',
          unit: UNITS.perSecond,
          queries: [{ expr: q.lockoutsByScope(), legend: '{{scope}}' }],
          w: 8,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Rate limited',
          description: 'Requests refused by a rate limit per second, by endpoint.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.rateLimitedByEndpoint(), legend: '{{endpoint}}' }],
          w: 8,
        }),
      )
      .withPanel(
        stat({
          title: 'Limiter backend',
          description:
            'The store of the lockout and rate-limit counters: redis (shared) or memory (per instance, when Redis is unset or unreachable). 1 marks the backend in use.',
          unit: UNITS.none,
          queries: [{ expr: q.limiterBackend(), legend: '{{backend}}' }],
          mappings: { '0': { text: 'unused', color: 'text' }, '1': { text: 'in use', color: 'green' } },
          w: 8,
          h: 4,
        }),
      )
      .withPanel(
        timeseries({
          title: 'Limiter Redis errors',
          description:
            'Redis commands of the lockout and rate-limit counters that failed or timed out per second (answered from memory instead).',
          unit: UNITS.perSecond,
          queries: [{ expr: q.limiterRedisErrors(), legend: 'errors' }],
        }),
      )
      .withPanel(
        timeseries({
          title: 'Audit rows deleted',
          description: 'Audit rows deleted per second by the retention job.',
          unit: UNITS.perSecond,
          queries: [{ expr: q.auditRowsDeleted(), legend: 'deleted' }],
        }),
      )
      .withRow(new RowBuilder('Signing keys'))
      .withPanel(
        stat({
          title: 'Signing key age',
          description: 'Age of the key signing new tokens. Rotate it before it passes the rotation age (see the runbook).',
          unit: UNITS.seconds,
          queries: [{ expr: q.signingKeyAge(), legend: 'age' }],
          thresholds: [
            { value: null, color: 'green' },
            { value: 80 * DAY, color: 'orange' },
            { value: 90 * DAY, color: 'red' },
          ],
        }),
      )
      .withPanel(
        stat({
          title: 'Published JWKS keys',
          description: 'Public keys published in the JWKS (more than one during a rotation).',
          unit: UNITS.count,
          queries: [{ expr: q.jwksKeys(), legend: 'keys' }],
        }),
      ),
  );
}
