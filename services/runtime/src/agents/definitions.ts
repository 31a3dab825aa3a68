/**
 * The agents: their tools, file restrictions and system prompts (upstream's, §2 of the reference).
 * Multi-agent mode registers orchestrator, coder, architect, debug and ask; single-agent mode
 * (`AGENT_RUNTIME__MULTI_AGENT_MODE=false`) orchestrator and universal.
 */
import type { ToolName } from './tool-specs.ts';

export type AgentType = 'orchestrator' | 'coder' | 'architect' | 'debug' | 'ask' | 'universal';
export const ALL_AGENT_TYPES: readonly AgentType[] = ['orchestrator', 'coder', 'architect', 'debug', 'ask', 'universal'];

export interface AgentDefinition {
  type: AgentType;
  /** `"<Type> Agent"`, as upstream's /agents lists it. */
  name: string;
  /** First line of the system prompt. */
  description: string;
  systemPrompt: string;
  allowedTools: readonly ToolName[];
  /** write_file paths must match one of these (architect: markdown only). */
  fileRestrictions?: readonly RegExp[];
  /** Tailored refusals for tools the agent may not use (upstream's wording). */
  refusals?: Partial<Record<ToolName, string>>;
}

const COMMON_RULES = `
Rules:
- Use exactly ONE tool at a time and wait for its result before the next step.
- Paths are relative to the project workspace.
- When the task is done, use attempt_completion with a short summary of the result.
- If you need information only the user has, use ask_followup_question.`;

const SWITCH_RULE = `
- If the request is outside your role, use switch_mode(mode="coder"|"architect"|"debug"|"ask"|"orchestrator", reason=...) instead of answering.`;

function prompt(first: string, body: string, canSwitch: boolean): string {
  return `${first}\n\n${body.trim()}\n${COMMON_RULES}${canSwitch ? SWITCH_RULE : ''}`;
}

const READ_ONLY_REFUSAL = (agent: string) =>
  `${agent} agent cannot modify files. ${agent} agent can only analyze and suggest fixes. For code changes, please switch to Coder agent.`;

export const AGENTS: Record<AgentType, AgentDefinition> = {
  orchestrator: {
    type: 'orchestrator',
    name: 'Orchestrator Agent',
    description: 'You are the Orchestrator Agent - the main coordinator of a multi-agent system.',
    systemPrompt: prompt(
      'You are the Orchestrator Agent - the main coordinator of a multi-agent system.',
      'You read the request and route it to the agent best suited for it: coder (code changes), architect (planning, designs, specifications), debug (errors and investigations), ask (questions and explanations).',
      false,
    ),
    allowedTools: ['read_file', 'list_files', 'search_in_code'],
  },
  coder: {
    type: 'coder',
    name: 'Coder Agent',
    description: 'You are the Coder Agent - specialized in writing, modifying, and refactoring code.',
    systemPrompt: prompt(
      'You are the Coder Agent - specialized in writing, modifying, and refactoring code.',
      'You implement features, fix bugs and refactor code. Read the relevant files before changing them, make focused changes, and run commands to check your work when useful.',
      false,
    ),
    allowedTools: [
      'read_file',
      'write_file',
      'list_files',
      'search_in_code',
      'create_directory',
      'execute_command',
      'attempt_completion',
      'ask_followup_question',
    ],
  },
  architect: {
    type: 'architect',
    name: 'Architect Agent',
    description: 'You are the Architect Agent - specialized in planning, designing, and creating technical specifications.',
    systemPrompt: prompt(
      'You are the Architect Agent - specialized in planning, designing, and creating technical specifications.',
      'You write plans, designs and specifications as markdown (.md) files. You do not change code: suggest switching to the Coder agent for that.',
      true,
    ),
    allowedTools: ['read_file', 'write_file', 'list_files', 'search_in_code', 'attempt_completion', 'ask_followup_question', 'switch_mode'],
    fileRestrictions: [/^.*\.md$/],
  },
  debug: {
    type: 'debug',
    name: 'Debug Agent',
    description: 'You are the Debug Agent - specialized in troubleshooting, investigating errors, and debugging.',
    systemPrompt: prompt(
      'You are the Debug Agent - specialized in troubleshooting, investigating errors, and debugging.',
      'You investigate errors: read code and logs, run diagnostic commands, and explain the cause with a suggested fix. You never modify files.',
      true,
    ),
    allowedTools: [
      'read_file',
      'list_files',
      'search_in_code',
      'execute_command',
      'attempt_completion',
      'ask_followup_question',
      'switch_mode',
    ],
    refusals: { write_file: READ_ONLY_REFUSAL('Debug'), create_directory: READ_ONLY_REFUSAL('Debug') },
  },
  ask: {
    type: 'ask',
    name: 'Ask Agent',
    description: 'You are the Ask Agent - specialized in answering questions, explaining concepts, and providing documentation.',
    systemPrompt: prompt(
      'You are the Ask Agent - specialized in answering questions, explaining concepts, and providing documentation.',
      'You answer questions and explain code and concepts. You never modify files and never execute commands.',
      true,
    ),
    allowedTools: ['read_file', 'search_in_code', 'list_files', 'attempt_completion', 'switch_mode'],
    refusals: {
      write_file:
        'Ask agent cannot modify files. Ask agent only answers questions and explains. For code changes, please switch to Coder agent.',
      create_directory:
        'Ask agent cannot modify files. Ask agent only answers questions and explains. For code changes, please switch to Coder agent.',
      execute_command: 'Ask agent cannot execute commands. For running commands, please switch to Coder or Debug agent.',
    },
  },
  universal: {
    type: 'universal',
    name: 'Universal Agent',
    description: 'You are a universal AI coding assistant with full access to all tools and capabilities.',
    systemPrompt: prompt(
      'You are a universal AI coding assistant with full access to all tools and capabilities.',
      'You answer questions, plan, debug and change code as the request needs.',
      false,
    ),
    allowedTools: [
      'read_file',
      'write_file',
      'list_files',
      'search_in_code',
      'create_directory',
      'execute_command',
      'attempt_completion',
      'ask_followup_question',
    ],
  },
};

/** The agents registered in a mode, in upstream's order. */
export function registeredAgents(multiAgent: boolean): AgentDefinition[] {
  return (multiAgent ? (['orchestrator', 'coder', 'architect', 'debug', 'ask'] as const) : (['orchestrator', 'universal'] as const)).map(
    (t) => AGENTS[t],
  );
}

export function isAgentType(value: unknown): value is AgentType {
  return typeof value === 'string' && (ALL_AGENT_TYPES as readonly string[]).includes(value);
}

/**
 * Why `agent` may not make this call, or undefined when it may. Checked before anything is
 * persisted: a refused call becomes an error result for the LLM.
 */
export function refusal(agent: AgentDefinition, tool: string, args: Record<string, unknown>): string | undefined {
  if (!(agent.allowedTools as readonly string[]).includes(tool)) {
    return agent.refusals?.[tool as ToolName] ?? `Tool '${tool}' is not allowed for ${agent.name.replace(' Agent', '')} agent`;
  }
  if (tool === 'write_file' && agent.fileRestrictions) {
    const path = typeof args.path === 'string' ? args.path : '';
    if (!agent.fileRestrictions.some((re) => re.test(path))) {
      return `Architect agent can only create/edit markdown (.md) files. File '${path}' is not allowed. For code changes, please switch to Coder agent.`;
    }
  }
  return undefined;
}
