/** One step of the tour as the views list it. */
export interface StepInfo {
  id: StepId
  title: string
}

export type StepId = 'register' | 'resolve' | 'proxy' | 'stop-one' | 'cleanup'

/** What a step ended with: a one-line summary and the facts it checked (the --json record). */
export interface StepResult {
  summary: string
  data: Record<string, unknown>
}

/** What the runner reports, in order; the plain, NDJSON and ink views each draw these. */
export type DemoEvent =
  | {type: 'plan'; steps: StepInfo[]; dir: string; backend: string}
  | {type: 'step'; index: number; id: StepId; title: string; shows: string}
  /** The svc command a user would run for what the step does. */
  | {type: 'command'; index: number; text: string}
  /** Lines of output; a table or a chart is several lines in one event. */
  | {type: 'output'; index: number; text: string}
  /** A status that replaces the previous one (live counters); plain text skips it. */
  | {type: 'progress'; index: number; text: string}
  | {type: 'done'; index: number; id: StepId; ms: number; result: StepResult}
  | {type: 'failed'; index: number; id: StepId; ms: number; error: string}
  | {type: 'pause'; ms: number}
  | {type: 'finished'; ok: boolean; ms: number; error?: string}

export interface DemoOptions {
  instances: number
  requests: number
  /** Pause between steps, in ms; 0 for none. */
  paceMs: number
  /** Service name the instances register as. */
  service: string
  /** How long a stopping instance keeps serving after it deregistered. */
  graceMs: number
  /** Aborting (Ctrl-C) stops the current step; clean-up still runs. */
  signal?: AbortSignal
}

export const DEMO_DEFAULTS = {
  instances: 3,
  requests: 60,
  paceMs: 1500,
  service: 'web',
  graceMs: 250,
} as const
