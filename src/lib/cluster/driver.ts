import path from 'node:path'

import type {ClusterKind, ClusterManifest, MemberManifest, MemberRole} from './types.js'

/** Where a member lives before it has a manifest entry. */
export interface MemberLayout {
  name: string
  index: number
  ports: Record<string, number>
  /** The member's folder: config, data and log live below it; its path marks the member's process. */
  memberDir: string
  dataDir: string
  logFile: string
}

export interface PlanContext {
  clusterName: string
  /** Unique per cluster start (etcd's initial-cluster-token). */
  token: string
  members: MemberLayout[]
}

export interface MemberPlan {
  args: string[]
  /** Written before the member first starts (configuration, ZooKeeper's myid). */
  files: Array<{path: string; content: string}>
}

/** What one member said about itself. */
export interface MemberProbe {
  /** It serves clients. */
  up: boolean
  /** When the backend states it directly (ZooKeeper's Mode). */
  role?: MemberRole
  /** The member's id in the backend's own terms (etcd member id, Consul server address). */
  selfId?: string
  /** The id of the leader this member follows. */
  leaderId?: string
  /** It is part of the replicated configuration (Consul's raft peers); undefined when the backend does not say. */
  joined?: boolean
  detail?: string
}

export interface Driver {
  kind: ClusterKind
  label: string
  /** The member's ports by role; the first one is the client port. */
  portNames: readonly string[]
  memberName(index: number): string
  plan(ctx: PlanContext, command: string, index: number): MemberPlan
  probe(member: MemberManifest, timeoutMs: number): Promise<MemberProbe>
  /** The member's id when it is known without asking the member (Consul's server address). */
  staticId?(member: MemberManifest): string
  backendUri(members: readonly MemberManifest[]): string
  /** After a leader is agreed on: why the whole cluster is not ready yet, or undefined when it is. */
  clusterReady?(manifest: ClusterManifest, leaderIndex: number, timeoutMs: number): Promise<string | undefined>
}

/** The member's folder (the data dir's parent). */
export function memberDir(member: MemberManifest): string {
  return path.dirname(member.dataDir)
}

/** What every command line of the member's process mentions: its folder, with a trailing separator (see ownsProcess). */
export function memberMarker(member: MemberManifest): string {
  return memberDir(member) + path.sep
}
