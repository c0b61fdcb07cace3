/** Local clusters of real servers on 127.0.0.1: the shapes shared by the launcher, `svc cluster` and `svc chaos`. */

export type ClusterKind = 'zk' | 'etcd' | 'consul'

export const CLUSTER_KINDS: readonly ClusterKind[] = ['zk', 'etcd', 'consul']

/** Every member listens here and nowhere else. */
export const CLUSTER_HOST = '127.0.0.1'

export interface MemberManifest {
  /** zk1, etcd2, consul3: also the member's folder under the cluster dir and its server-side name. */
  name: string
  /** 0-based position in `members` (ZooKeeper's myid is index + 1). */
  index: number
  /** The port clients use: ZooKeeper client port, etcd client URL port, Consul HTTP port. */
  clientPort: number
  /** Every port the member listens on, by role (client, quorum, election, peer, http, serfLan, serfWan, server). */
  ports: Record<string, number>
  /** The process last started for this member; it may have exited since. */
  pid?: number
  dataDir: string
  logFile: string
  command: string
  args: string[]
}

/** Measured while the cluster started, in ms from the first spawn. */
export interface StartupTimings {
  /** Every member answered its status query. */
  answeringMs: number
  /** A member first reported itself leader. */
  leaderMs: number
  /** Every member follows that leader (and Consul's catalog lists every node). */
  readyMs: number
}

export interface ClusterManifest {
  name: string
  kind: ClusterKind
  /** Absolute; holds manifest.json and one folder per member (config, data, log). */
  dir: string
  createdAt: string
  members: MemberManifest[]
  /** What `--backend` takes: zk://h:p,h:p/services, etcd://h:p,h:p/services, consul://h:p,h:p. */
  backendUri: string
  timings?: StartupTimings
}

export type MemberRole = 'leader' | 'follower' | 'standalone' | 'unknown'

export interface MemberStatus {
  index: number
  name: string
  /** host:clientPort */
  address: string
  /** The member answered its status query. */
  up: boolean
  role: MemberRole
  /** Set while the member's process exists (a SIGSTOPped member has a pid and is not up). */
  pid?: number
  /** The leader this member follows, when the backend says so (etcd, Consul) and that leader is a member. */
  leaderIndex?: number
  /** Why the member is not up, or what it said instead of a role. */
  detail?: string
}

export type StopSignal = 'SIGTERM' | 'SIGKILL' | 'SIGSTOP'

export interface StartClusterOptions {
  kind: ClusterKind
  /** Members; default 3. */
  nodes?: number
  /** Names the cluster; etcd's cluster token and Consul's node names derive from it. */
  name: string
  /** Data, logs and manifest.json live here; must not hold a cluster already. */
  dir: string
  /** Use consecutive ports from here (port j of member i is basePort + j * nodes + i); default: free ports. */
  basePort?: number
  /** Bound on starting and electing; default 60 s. */
  timeoutMs?: number
  log?: (message: string) => void
  /** Aborting stops the members started so far and removes the manifest (Ctrl-C during `svc cluster up`). */
  signal?: AbortSignal
}
