/**
 * One line of every NDJSON stream svc prints (watch, demo, agent, register): `ts` (ISO 8601) and `type` first,
 * then the fields of that type; docs/json.md lists them.
 */
export type StreamEvent = Record<string, unknown> & {ts: string; type: string}

/** An event of `type` stamped now. */
export function streamEvent(type: string, fields: Record<string, unknown> = {}, now = new Date()): StreamEvent {
  return {ts: now.toISOString(), type, ...fields}
}

/** The event as its one line, without the newline. */
export function eventLine(event: StreamEvent): string {
  return JSON.stringify(event)
}
