/** setup(): the target answers `GET /ready` with 200, or the run stops before any load is sent. */
import http from 'k6/http';

export function assertReady(service: string, baseUrl: string): void {
  const res = http.get(`${baseUrl}/ready`, { tags: { name: 'GET /ready' }, timeout: '10s' });
  if (res.status !== 200) {
    const why = res.error ? res.error : `${res.status} ${String(res.body).slice(0, 300)}`;
    throw new Error(`${service} at ${baseUrl} is not ready (${why}): start the platform with npm start, or set its URL`);
  }
}
