/**
 * Kept for turn/turn-context.ts only: the event store is now event-catalog.ts (types and
 * categories), event-writer.ts (the batched writer, the turns' event sink) and event-reports.ts
 * (the `/events/*` reads). Import from those.
 */
export type { EventData, EventType } from './event-catalog.ts';
export type { EventWriter as EventStore } from './event-writer.ts';
