/** The website's own metrics (besides the kit's RED histogram): its calls to the services and to Prometheus. */
import type { ServiceMetrics } from '@codelab/service-kit';

export function createWebMetrics(m: ServiceMetrics) {
  return {
    opsCalls: m.counter({
      name: 'web_ops_calls_total',
      help: "Calls of the operations view to a service's /health or /ready, or to Prometheus, by target (auth, gateway, runtime, llm-proxy, prometheus, other) and outcome (ok, error_status, unreachable)",
      labelNames: ['target', 'outcome'],
    }),
  };
}

export type WebMetrics = ReturnType<typeof createWebMetrics>;
