/**
 * waitForQuietMachine (scripts/bench/platform.ts): a bench waits for the machine's CPUs to be
 * quiet before it measures, reading /proc/stat, and says what it saw; it never waits forever.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { waitForQuietMachine } from '../../scripts/bench/platform.ts';

describe('waitForQuietMachine', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('returns after one second of measuring when the machine is under the limit, saying how busy it was', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    await waitForQuietMachine('t', 1.01); // every machine is under 101% busy
    expect(log).toHaveBeenCalledTimes(1);
    expect(String(log.mock.calls[0]![0])).toMatch(/^t: machine quiet \(\d+% busy\) after \d+ s$/);
  });

  it('gives up after maxSeconds when the machine never gets under the limit, and says it measures anyway', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const started = performance.now();
    await waitForQuietMachine('t', -1, 2); // nothing is under -100% busy
    expect(performance.now() - started).toBeGreaterThanOrEqual(2000);
    expect(log).toHaveBeenCalledTimes(1);
    expect(String(log.mock.calls[0]![0])).toMatch(
      /^t: the machine stayed busy \(\d+% of its CPUs over the last second\) for 2 s: measuring anyway, expect noise$/,
    );
  });
});
