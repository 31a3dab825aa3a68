import { describe, expect, it, vi } from 'vitest';
import { parseTarget, reportTarget, TARGETS, targetTable, type TargetResult } from '../../scripts/bench/targets.ts';

const cpu: TargetResult = { id: 'cpu-per-turn', measured: '4.2 ms', ratio: '= 450 hello-world requests', met: true };
const commits: TargetResult = { id: 'commits-per-turn', measured: '4.4 commits per turn', ratio: 'x2.2 the goal', met: false };

describe('bench targets', () => {
  it('a reported target reads back from its output line; other lines are not targets', () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      reportTarget(cpu);
      const line = String(log.mock.calls[0]![0]);
      expect(parseTarget(line)).toEqual(cpu);
    } finally {
      log.mockRestore();
    }
    expect(parseTarget('RESULT ttft: fine')).toBeUndefined();
    expect(parseTarget('TARGET {"id":"no-such-target","measured":"1","ratio":"","met":true}')).toBeUndefined();
    expect(() => reportTarget({ ...cpu, id: 'no-such-target' })).toThrow(/unknown target no-such-target/);
  });

  it('the table names every target, counts only the measured and met ones, and the latest report of a target wins', () => {
    const table = targetTable([{ ...cpu, met: false, measured: '9.9 ms' }, cpu, commits]);
    expect(table.total).toBe(TARGETS.length);
    expect(table.met).toBe(1);
    const rows = table.text.split('\n').slice(2);
    expect(rows).toHaveLength(TARGETS.length);
    expect(rows[0]).toMatch(/CPU per turn.*\| <= 5\.5 ms\s+\| 4\.2 ms .*\| met$/);
    expect(table.text).not.toContain('9.9 ms');
    expect(rows[1]).toMatch(/commits per plain turn.*\| MISSED$/);
    for (const row of rows.slice(2)) expect(row).toMatch(/not measured .*\| NOT MEASURED$/);
  });
});
