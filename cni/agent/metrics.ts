/** The agent's Prometheus metrics, on a registry of its own (no global state between agents in one process). */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export class AgentMetrics {
  readonly registry = new Registry();
  readonly peers = new Gauge({
    name: "skein_net_agent_peers",
    help: "Peer nodes in this node's flood list",
    registers: [this.registry],
  });
  readonly fdbEntries = new Gauge({
    name: "skein_net_agent_fdb_entries",
    help: "Forwarding entries the agent keeps on the VXLAN device (flood list and static)",
    registers: [this.registry],
  });
  readonly resyncs = new Counter({
    name: "skein_net_agent_resyncs_total",
    help: "Periodic full resyncs started",
    registers: [this.registry],
  });
  readonly reconciles = new Counter({
    name: "skein_net_agent_reconciles_total",
    help: "Reconciles of the node overlay, by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: "skein_net_agent_errors_total",
    help: "Failed reconciles of the node overlay",
    registers: [this.registry],
  });
  readonly changes = new Counter({
    name: "skein_net_agent_kernel_changes_total",
    help: "Changes made to kernel state (devices, addresses, FDB, neighbours, rules)",
    registers: [this.registry],
  });
  readonly recreations = new Counter({
    name: "skein_net_agent_device_recreations_total",
    help: "Devices deleted and recreated because they were missing or incompatible",
    labelNames: ["device"] as const,
    registers: [this.registry],
  });
  readonly reconcileSeconds = new Histogram({
    name: "skein_net_agent_reconcile_duration_seconds",
    help: "Time to converge the node overlay",
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
}
