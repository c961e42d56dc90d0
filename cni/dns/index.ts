/**
 * The node's DNS responder, for the network agent to host: `PodRecords` (the
 * record source, fed by pod, node and Network informers), `DnsResponder`
 * (UDP/TCP sockets, answers, forwarding, metrics) and `HealthReporter`
 * (active probes of this node's pods, reported on the pods).
 */
export { HealthReporter, type HealthReporterOptions } from "./health.ts";
export {
  DEFAULT_DOMAIN,
  DEFAULT_TTL_SECONDS,
  DNS_HEALTHY_CONDITION,
  DNS_NAME_ANNOTATION,
  type DnsSettings,
  PodRecords,
  type PodRecordsOptions,
  PROBE_HTTP_ANNOTATION,
  PROBE_TCP_ANNOTATION,
  type Source,
} from "./pod-records.ts";
export type { Zone } from "./query.ts";
export { DnsListenError, DnsResponder, type DnsResponderOptions, type ListenAddress } from "./responder.ts";
export { parseUpstream, resolvConfServers, type Upstream } from "./upstream.ts";
