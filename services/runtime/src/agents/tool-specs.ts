/**
 * The tools agents may ask the IDE to run, as OpenAI function specs (upstream TOOLS_SPEC, plus the
 * `attempt_completion` and `ask_followup_question` specs upstream promised its agents but never
 * wrote). `switch_mode` is handled by the runtime itself; every other tool runs in the IDE.
 */
const AGENT_TYPES = ['orchestrator', 'coder', 'architect', 'debug', 'ask'] as const;

const TOOL_SPECS = {
  read_file: {
    description: 'Read content from a file on disk. Supports partial reading by line numbers.',
    parameters: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'File path relative to project workspace' },
        encoding: { type: 'string', default: 'utf-8' },
        start_line: { type: 'integer', minimum: 1, description: 'First line to read (1-based, inclusive)' },
        end_line: { type: 'integer', minimum: 1, description: 'Last line to read (1-based, inclusive)' },
      },
      required: ['path'],
    },
  },
  write_file: {
    description: 'Write content to a file. Requires user confirmation before execution.',
    parameters: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'File path relative to project workspace' },
        content: { type: 'string', description: 'Content to write' },
        encoding: { type: 'string', default: 'utf-8' },
        create_dirs: { type: 'boolean', default: false },
        backup: { type: 'boolean', default: true },
      },
      required: ['path', 'content'],
    },
  },
  list_files: {
    description: 'List files and directories in the specified path within workspace.',
    parameters: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'Directory path ("." = workspace root)' },
        recursive: { type: 'boolean', default: false },
        include_hidden: { type: 'boolean', default: false },
        pattern: { type: 'string', description: 'Glob pattern to filter files' },
      },
      required: ['path'],
    },
  },
  create_directory: {
    description: 'Create a new directory at the specified path within workspace.',
    parameters: {
      type: 'object',
      properties: { path: { type: 'string' }, recursive: { type: 'boolean', default: true } },
      required: ['path'],
    },
  },
  execute_command: {
    description: 'Execute a shell command in the workspace. Dangerous commands require user approval.',
    parameters: {
      type: 'object',
      properties: {
        command: { type: 'string' },
        cwd: { type: 'string' },
        timeout: { type: 'integer', default: 60, description: 'Seconds (max 300)' },
        shell: { type: 'boolean', default: false },
      },
      required: ['command'],
    },
  },
  search_in_code: {
    description: 'Search for text patterns in code files using grep.',
    parameters: {
      type: 'object',
      properties: {
        query: { type: 'string' },
        path: { type: 'string', default: '.' },
        file_pattern: { type: 'string' },
        case_sensitive: { type: 'boolean', default: false },
        regex: { type: 'boolean', default: false },
        max_results: { type: 'integer', default: 100, maximum: 1000 },
      },
      required: ['query'],
    },
  },
  attempt_completion: {
    description: 'Present the result of the task to the user once it is complete. Use it only when the task is done.',
    parameters: {
      type: 'object',
      properties: {
        result: { type: 'string', description: 'What was done, stated as final' },
        command: { type: 'string', description: 'Optional command that shows the result (e.g. open a page)' },
      },
      required: ['result'],
    },
  },
  ask_followup_question: {
    description: 'Ask the user a question to gather information needed to complete the task.',
    parameters: {
      type: 'object',
      properties: {
        question: { type: 'string' },
        suggestions: { type: 'array', items: { type: 'string' }, description: 'Possible answers the user may pick' },
      },
      required: ['question'],
    },
  },
  switch_mode: {
    description:
      'Switch to a different agent mode when the current agent cannot handle the task. Available modes: orchestrator (task routing), coder (code changes), architect (planning), debug (troubleshooting), ask (Q&A only)',
    parameters: {
      type: 'object',
      properties: {
        mode: { type: 'string', enum: [...AGENT_TYPES] },
        reason: { type: 'string', default: 'Task requires different agent capabilities' },
      },
      required: ['mode'],
    },
  },
} as const;

export type ToolName = keyof typeof TOOL_SPECS;
export const TOOL_NAMES = Object.keys(TOOL_SPECS) as ToolName[];

/** OpenAI `tools` for a list of tool names. */
export function toolSpecs(
  names: readonly ToolName[],
): { type: 'function'; function: { name: string; description: string; parameters: unknown } }[] {
  return names.map((name) => ({ type: 'function', function: { name, ...TOOL_SPECS[name] } }));
}
