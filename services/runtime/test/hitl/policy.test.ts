import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApprovalPolicy } from '../../src/hitl/policy.ts';

describe('ApprovalPolicy', () => {
  it("defaults to upstream's rules", () => {
    const p = ApprovalPolicy.defaults();
    for (const tool of ['write_file', 'execute_command', 'create_directory', 'delete_file', 'move_file'])
      expect(p.decide('coder', tool).approval, tool).toBe(true);
    for (const tool of ['read_file', 'list_files', 'search_in_code', 'attempt_completion'])
      expect(p.decide('coder', tool).approval, tool).toBe(false);
    expect(p.decide('coder', 'write_file').reason).toBe('File modification requires user approval');
  });

  it('takes per-tool and per-agent rules (agent beats tool beats default) from a file or inline JSON', async () => {
    const doc = {
      default: true,
      tools: { read_file: false, execute_command: { approval: true, reason: 'Commands need a human' } },
      agents: { architect: { write_file: false } },
    };
    const dir = await mkdtemp(path.join(tmpdir(), 'policy-'));
    const file = path.join(dir, 'policy.json');
    await writeFile(file, JSON.stringify(doc));
    for (const p of [ApprovalPolicy.load({ file }), ApprovalPolicy.load({ inline: JSON.stringify(doc) })]) {
      expect(p.decide('architect', 'write_file')).toEqual({ approval: false, reason: null });
      expect(p.decide('coder', 'write_file').approval).toBe(true);
      expect(p.decide('coder', 'execute_command')).toEqual({ approval: true, reason: 'Commands need a human' });
      expect(p.decide('coder', 'read_file').approval).toBe(false);
      expect(p.decide('coder', 'search_in_code').approval).toBe(true); // default: true
    }
  });

  it('refuses a bad policy with a message naming the problem', async () => {
    expect(() => ApprovalPolicy.load({ inline: '{oops' })).toThrow(/AGENT_RUNTIME__HITL_POLICY: not JSON/);
    expect(() => ApprovalPolicy.load({ inline: '{"tools": {"write_file": "yes"}}' })).toThrow(/tools\.write_file must be true, false or/);
    expect(() => ApprovalPolicy.load({ inline: '{"tool": {}}' })).toThrow(/unknown keys tool/);
    expect(() => ApprovalPolicy.load({ file: '/nonexistent/policy.json' })).toThrow(
      /AGENT_RUNTIME__HITL_POLICY_FILE \/nonexistent\/policy.json/,
    );
  });
});
