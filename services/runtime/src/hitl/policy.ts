/**
 * The one approval policy: which tool calls wait for a human, per tool and per agent. Upstream's
 * defaults (write_file, execute_command, create_directory, delete_file, move_file need approval),
 * overridden by a JSON document from AGENT_RUNTIME__HITL_POLICY_FILE or AGENT_RUNTIME__HITL_POLICY:
 *
 *   {"default": false,
 *    "tools":  {"write_file": true, "execute_command": {"approval": true, "reason": "Commands need a human"}},
 *    "agents": {"architect": {"write_file": false}}}
 *
 * An agent's rule beats the tool's rule, which beats `default`. A bad document stops the runtime
 * at boot with a message naming the problem.
 */
import { readFileSync } from 'node:fs';

export interface ApprovalRule {
  approval: boolean;
  reason: string | null;
}

type RuleInput = boolean | { approval: boolean; reason?: string };

interface PolicyDocument {
  default?: boolean;
  tools?: Record<string, RuleInput>;
  agents?: Record<string, Record<string, RuleInput>>;
}

/** Upstream's HITLPolicyService rules. */
const DEFAULT_RULES: Record<string, ApprovalRule> = {
  write_file: { approval: true, reason: 'File modification requires user approval' },
  delete_file: { approval: true, reason: 'File deletion requires user approval' },
  execute_command: { approval: true, reason: 'Command execution requires user approval' },
  create_directory: { approval: true, reason: 'Directory creation requires user approval' },
  move_file: { approval: true, reason: 'File move requires user approval' },
  read_file: { approval: false, reason: 'Read operations are safe' },
  list_files: { approval: false, reason: 'List operations are safe' },
  search_files: { approval: false, reason: 'Search operations are safe' },
};

class PolicyError extends Error {}

function rule(input: unknown, where: string): ApprovalRule {
  if (typeof input === 'boolean') return { approval: input, reason: input ? 'Requires user approval (policy)' : null };
  if (input && typeof input === 'object' && typeof (input as { approval?: unknown }).approval === 'boolean') {
    const r = input as { approval: boolean; reason?: unknown };
    if (r.reason !== undefined && typeof r.reason !== 'string') throw new PolicyError(`${where}.reason must be a string`);
    return { approval: r.approval, reason: (r.reason as string | undefined) ?? (r.approval ? 'Requires user approval (policy)' : null) };
  }
  throw new PolicyError(`${where} must be true, false or {"approval": boolean, "reason"?: string}`);
}

function table(input: unknown, where: string): Record<string, ApprovalRule> {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw new PolicyError(`${where} must be an object of tool names`);
  return Object.fromEntries(Object.entries(input).map(([tool, r]) => [tool, rule(r, `${where}.${tool}`)]));
}

export class ApprovalPolicy {
  private readonly fallback: boolean;
  private readonly tools: Record<string, ApprovalRule>;
  private readonly agents: Record<string, Record<string, ApprovalRule>>;

  private constructor(fallback: boolean, tools: Record<string, ApprovalRule>, agents: Record<string, Record<string, ApprovalRule>>) {
    this.fallback = fallback;
    this.tools = tools;
    this.agents = agents;
  }

  static defaults(): ApprovalPolicy {
    return new ApprovalPolicy(false, { ...DEFAULT_RULES }, {});
  }

  /** Parses a policy document (JSON text); `source` names it in errors. */
  static parse(text: string, source: string): ApprovalPolicy {
    let doc: PolicyDocument;
    try {
      doc = JSON.parse(text) as PolicyDocument;
    } catch (err) {
      throw new PolicyError(`${source}: not JSON (${(err as Error).message})`);
    }
    try {
      if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new PolicyError('the policy must be a JSON object');
      const unknown = Object.keys(doc).filter((k) => !['default', 'tools', 'agents'].includes(k));
      if (unknown.length) throw new PolicyError(`unknown keys ${unknown.join(', ')} (expected default, tools, agents)`);
      if (doc.default !== undefined && typeof doc.default !== 'boolean') throw new PolicyError('default must be a boolean');
      const tools = { ...DEFAULT_RULES, ...(doc.tools === undefined ? {} : table(doc.tools, 'tools')) };
      const agents: Record<string, Record<string, ApprovalRule>> = {};
      if (doc.agents !== undefined) {
        if (!doc.agents || typeof doc.agents !== 'object' || Array.isArray(doc.agents))
          throw new PolicyError('agents must be an object of agent names');
        for (const [agent, t] of Object.entries(doc.agents)) agents[agent] = table(t, `agents.${agent}`);
      }
      return new ApprovalPolicy(doc.default ?? false, tools, agents);
    } catch (err) {
      throw new PolicyError(`${source}: ${(err as Error).message}`);
    }
  }

  /** From the settings: the file, else the inline JSON, else upstream's defaults. */
  static load(opts: { file?: string | undefined; inline?: string | undefined }): ApprovalPolicy {
    if (opts.file) {
      let text: string;
      try {
        text = readFileSync(opts.file, 'utf8');
      } catch (err) {
        throw new PolicyError(`AGENT_RUNTIME__HITL_POLICY_FILE ${opts.file}: ${(err as Error).message}`);
      }
      return ApprovalPolicy.parse(text, `AGENT_RUNTIME__HITL_POLICY_FILE ${opts.file}`);
    }
    if (opts.inline) return ApprovalPolicy.parse(opts.inline, 'AGENT_RUNTIME__HITL_POLICY');
    return ApprovalPolicy.defaults();
  }

  /** Does `agent` need a human's approval to make this call, and why? */
  decide(agent: string, tool: string): ApprovalRule {
    return (
      this.agents[agent]?.[tool] ??
      this.tools[tool] ?? { approval: this.fallback, reason: this.fallback ? 'Requires user approval (policy default)' : null }
    );
  }
}
