import * as Flags from '@oclif/core/flags'

/** `svc agent --swarm`: Swarm services' published ports, beside the containers. */
export const swarmFlags = {
  swarm: Flags.boolean({
    description:
      "on a swarm manager, also register every Swarm service's published ports (ingress: each ready node; host mode: each task) and follow them",
  }),
}
