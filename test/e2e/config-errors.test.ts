/** A bad setting stops a service at boot: exit code 1 and a message naming the variable and what it expects. */
import { describe, expect, it } from 'vitest';
import { runProcess, PREFIX, type ServiceName } from '../helpers/processes.ts';

describe('configuration errors at boot', () => {
  it.each(Object.keys(PREFIX) as ServiceName[])('%s exits 1 naming every bad variable', async (name) => {
    const p = PREFIX[name];
    const env: Record<string, string> = { [`${p}__PORT`]: 'eighty', [`${p}__LOG_LEVEL`]: 'loud', [`${p}__INTERNAL_API_KEY`]: 'short' };
    if (name === 'llm-proxy') env.LLM_PROXY__LLM_MODE = 'psychic';
    const run = runProcess([`services/${name}/src/main.ts`], env);
    expect(await run.exited()).toBe(1);
    const out = run.output();
    expect(out).toContain(`${p}__PORT="eighty" is invalid: expected an integer from 0 to 65535`);
    expect(out).toContain(`${p}__LOG_LEVEL="loud" is invalid: expected one of`);
    expect(out).toContain(`${p}__INTERNAL_API_KEY=(value hidden) is invalid: expected a string of at least 16 characters`);
    expect(out).not.toContain('short');
    if (name === 'llm-proxy') expect(out).toContain('LLM_PROXY__LLM_MODE="psychic" is invalid: expected one of mock');
  });

  it('requires the internal key', async () => {
    const run = runProcess(['services/gateway/src/main.ts'], {});
    expect(await run.exited()).toBe(1);
    expect(run.output()).toContain('GATEWAY__INTERNAL_API_KEY is required');
  });
});
