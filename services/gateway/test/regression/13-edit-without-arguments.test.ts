/**
 * Issue 13: an `edit` decision without `modified_arguments` passed the gateway and failed at the
 * runtime with a 400. Gateway and runtime now share one rule set (`@codelab/protocol`): the gateway
 * answers the frame with its usual error frame and never forwards it; the runtime would refuse it
 * with RT_ERR_INVALID_MESSAGE all the same.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertTurnFrame } from '@codelab/protocol';
import { answerTurn } from '../ws/stub-runtime.ts';
import { startHarness, type Harness } from '../ws/harness.ts';

describe('issue 13: an edit decision without modified_arguments', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h?.close());

  it('is answered by the gateway with GW_ERR_WS_INVALID_FRAME and never reaches the runtime; the connection stays usable', async () => {
    h.runtime.script = answerTurn;
    const client = await h.connect('s-edit-no-args');
    client.send({ type: 'hitl_decision', call_id: 'call_1', decision: 'edit' });
    const [error] = await client.until((f) => f.type === 'error');
    // a turn frame the gateway could not run: its answer, final, without seq
    expect(error).toMatchObject({
      type: 'error',
      code: 'GW_ERR_WS_INVALID_FRAME',
      is_final: true,
      content: expect.stringContaining('"modified_arguments" is required'),
    });
    expect(error!.seq).toBeUndefined();
    expect(h.runtime.callsTo('POST', '/agent/message/stream')).toHaveLength(0);

    client.send({ type: 'user_message', content: 'still there?' });
    expect((await client.until((f) => f.is_final === true, 1)).at(-1)).toMatchObject({ content: 'You said still there?' });
    client.close();
  });

  it('is the runtime check too: the same rule refuses it as an invalid message', () => {
    const errors = {
      invalid: (m: string) => Object.assign(new Error(m), { code: 'invalid' }),
      unsupported: (m: string) => Object.assign(new Error(m), { code: 'unsupported' }),
    };
    expect(() => assertTurnFrame({ type: 'hitl_decision', call_id: 'call_1', decision: 'edit' }, errors)).toThrow(
      expect.objectContaining({ code: 'invalid' }),
    );
    expect(() =>
      assertTurnFrame({ type: 'hitl_decision', call_id: 'call_1', decision: 'edit', modified_arguments: { path: 'v2.py' } }, errors),
    ).not.toThrow();
  });
});
