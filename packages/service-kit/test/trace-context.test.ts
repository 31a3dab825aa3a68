import { context, trace, TraceFlags } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { activeTraceIds, fallbackTraceIds, parseTraceparent, randomHex } from '../src/trace-context.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;

describe('trace-context', () => {
  describe('parseTraceparent', () => {
    it('reads a valid header', () => {
      expect(parseTraceparent(VALID)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 1 });
      expect(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-00`)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 0 });
      expect(parseTraceparent(` ${VALID} `)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 1 });
    });

    it.each([
      ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN_ID}-01`],
      ['an all-zero span id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
      ['version ff', `ff-${TRACE_ID}-${SPAN_ID}-01`],
      ['a short trace id', `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01`],
      ['a long trace id', `00-${TRACE_ID}0-${SPAN_ID}-01`],
      ['a short span id', `00-${TRACE_ID}-${SPAN_ID.slice(1)}-01`],
      ['a long span id', `00-${TRACE_ID}-${SPAN_ID}0-01`],
      ['one-digit flags', `00-${TRACE_ID}-${SPAN_ID}-1`],
      ['a three-digit version', `000-${TRACE_ID}-${SPAN_ID}-01`],
      ['non-hex characters', `00-${TRACE_ID.slice(0, -1)}g-${SPAN_ID}-01`],
      ['missing parts', `00-${TRACE_ID}-01`],
      ['an empty string', ''],
    ])('refuses %s', (_what, header) => {
      expect(parseTraceparent(header)).toBeUndefined();
    });

    it('refuses what is not a string', () => {
      expect(parseTraceparent(undefined)).toBeUndefined();
      expect(parseTraceparent([VALID])).toBeUndefined();
      expect(parseTraceparent(42)).toBeUndefined();
    });

    // W3C Trace Context allows lower-case hex only, as the OpenTelemetry propagator does: with tracing
    // off the kit must not continue a trace that with tracing on it would not.
    it('refuses upper-case hex', () => {
      expect(parseTraceparent(`00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`)).toBeUndefined();
    });
  });

  describe('randomHex', () => {
    it('gives lower-case hex of the asked length, never the same twice, across refills of its pool', () => {
      const seen = new Set<string>();
      for (let i = 0; i < 1000; i++) {
        const id = randomHex(16); // 1000 x 16 bytes: the 4 KiB pool is refilled three times
        expect(id).toMatch(/^[\da-f]{32}$/);
        seen.add(id);
      }
      expect(seen.size).toBe(1000);
      expect(randomHex(8)).toMatch(/^[\da-f]{16}$/);
    });
  });

  describe('fallbackTraceIds', () => {
    it('continues the trace id of a valid traceparent with a new span id', () => {
      const ids = fallbackTraceIds(VALID);
      expect(ids.trace_id).toBe(TRACE_ID);
      expect(ids.span_id).toMatch(/^[\da-f]{16}$/);
      expect(ids.span_id).not.toBe(SPAN_ID);
      expect(fallbackTraceIds(VALID).span_id).not.toBe(ids.span_id);
    });

    it('starts a new random trace without a usable traceparent', () => {
      const a = fallbackTraceIds(undefined);
      const b = fallbackTraceIds(`00-${'0'.repeat(32)}-${SPAN_ID}-01`);
      for (const ids of [a, b]) {
        expect(ids.trace_id).toMatch(/^[\da-f]{32}$/);
        expect(ids.span_id).toMatch(/^[\da-f]{16}$/);
        expect(ids.trace_id).not.toBe('0'.repeat(32));
      }
      expect(a.trace_id).not.toBe(b.trace_id);
    });
  });

  describe('activeTraceIds', () => {
    it('is undefined without an active span', () => {
      expect(activeTraceIds()).toBeUndefined();
    });

    it('gives the ids of a valid span in the context', () => {
      const ctx = trace.setSpanContext(context.active(), { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED });
      expect(activeTraceIds(ctx)).toEqual({ trace_id: TRACE_ID, span_id: SPAN_ID });
    });

    it('ignores an invalid span context', () => {
      const ctx = trace.setSpanContext(context.active(), { traceId: '0'.repeat(32), spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED });
      expect(activeTraceIds(ctx)).toBeUndefined();
    });
  });
});

describe('parseTraceparent of later versions', () => {
  it('accepts fields after the flags only for versions after 00', () => {
    const id = 'a'.repeat(32);
    const span = 'b'.repeat(16);
    expect(parseTraceparent(`01-${id}-${span}-01-future`)).toEqual({ traceId: id, spanId: span, flags: 1 });
    expect(parseTraceparent(`00-${id}-${span}-01-future`)).toBeUndefined();
  });
});
