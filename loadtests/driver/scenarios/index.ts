/** The four scenarios, by name (the same as the k6 scripts' and `loadtests/lib/profiles.ts`). */
import type { ScenarioName } from '../../lib/profiles.ts';
import { api } from './api.ts';
import { auth } from './auth.ts';
import { chat } from './chat.ts';
import { llm } from './llm.ts';
import type { Scenario } from './types.ts';

export const SCENARIO_IMPLS: Record<ScenarioName, Scenario<unknown>> = { auth, api, chat, llm };
