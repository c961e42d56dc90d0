/**
 * `skein net-agent`: the node network agent's entry point. Parses flags, wires
 * the agent to the API server, the kernel and the probe server (/metrics,
 * /healthz, /readyz), and runs until SIGTERM or SIGINT; stopping leaves the
 * node's devices in place so running pods keep their network.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describeError } from "../kit/errors.ts";
import { loadKubeConfig } from "../kit/k8s/kubeconfig.ts";
import { exitCodeFor, handleTermination } from "../kit/lifecycle.ts";
import { createLogger, type Logger } from "../kit/log.ts";
import { ProbeServer } from "../kit/serve.ts";
import { NetworkAgent } from "./agent/agent.ts";
import { type AgentConfig, parseAgentFlags, USAGE } from "./agent/flags.ts";
import { hostExec } from "./agent/kernel.ts";
import { AgentMetrics } from "./agent/metrics.ts";
import { type DnsConfig, dnsArgv } from "./dns/flags.ts";
import { DnsWorkers, withWorkerMetrics } from "./dns/workers.ts";
import { readSettings } from "./settings.ts";

/** The plugin executable ships beside the program that runs the agent (dist/skein-cni). */
function defaultPluginSource(): string {
  return join(dirname(resolve(process.argv[1] ?? ".")), "skein-cni");
}

/**
 * The DNS program: the Bun-compiled skein-dns beside the program that runs
 * the agent (dist/skein-dns), which answers more queries per core; where it
 * was not built (a development tree), this program's own `skein dns` on
 * this runtime.
 */
function defaultDnsProgram(): [string, ...string[]] {
  const compiled = join(dirname(resolve(process.argv[1] ?? ".")), "skein-dns");
  if (existsSync(compiled)) return [compiled];
  return [process.execPath, ...process.execArgv, resolve(process.argv[1] ?? "."), "dns"];
}

/**
 * The DNS responder answers on the gateway address, which exists only once the
 * overlay is up: wait for the agent's first successful convergence, then start
 * the DNS program (it runs `--dns-workers` answering processes itself) and
 * keep it running.
 */
async function hostDns(
  config: AgentConfig,
  agent: NetworkAgent,
  signal: AbortSignal,
  log: Logger,
): Promise<DnsWorkers | undefined> {
  while (!agent.readiness().ready) {
    if (signal.aborted) return undefined;
    await sleep(200);
  }
  const { gateway } = await readSettings(config.settingsFile);
  const dnsLog = log.child({ part: "dns" });
  const dnsConfig: Omit<DnsConfig, "metricsAddress" | "workers"> = {
    node: config.node,
    network: config.network,
    listen: [{ address: gateway, port: 53 }, ...config.dns.extraListen],
    allow: [],
    allowAnyClient: false,
    resolvConf: "/etc/resolv.conf",
    probes: true,
    upstreamTimeoutMs: 2_000,
    ...(config.kubeconfig === undefined ? {} : { kubeconfig: config.kubeconfig }),
  };
  const [program, ...invocation] = config.dns.program;
  const argv = [...invocation, ...dnsArgv(dnsConfig), `--workers=${config.dns.workers}`];
  const dns = new DnsWorkers({
    workers: 1,
    launch: () =>
      spawn(program, argv, { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "json" }),
    logger: dnsLog,
  });
  try {
    await dns.start(signal);
    return dns;
  } catch (err) {
    if (signal.aborted) return undefined;
    dnsLog.error(
      { err: describeError(err), program: config.dns.program },
      "the DNS responder could not start; the overlay runs without it",
    );
    return undefined;
  }
}

export async function main(argv: string[]): Promise<number> {
  let config: ReturnType<typeof parseAgentFlags>;
  try {
    config = parseAgentFlags(argv, process.env, {
      pluginSource: defaultPluginSource(),
      dnsProgram: defaultDnsProgram(),
    });
  } catch (err) {
    console.error(`skein net-agent: ${describeError(err)}`);
    return 2;
  }
  if (config === "help") {
    console.log(USAGE);
    return 0;
  }
  const log = createLogger("net-agent").child({ node: config.node, network: config.network });
  let kubeConfig: ReturnType<typeof loadKubeConfig>["kubeConfig"];
  try {
    kubeConfig = loadKubeConfig(
      config.kubeconfig === undefined ? {} : { path: config.kubeconfig },
    ).kubeConfig;
  } catch (err) {
    log.error({ err: describeError(err) }, "cannot reach the API server");
    return 1;
  }
  const termination = handleTermination({
    onForce: (signal) => process.exit(exitCodeFor(signal)),
    logger: log,
  });
  const metrics = new AgentMetrics();
  const agent = new NetworkAgent({ config, kubeConfig, exec: hostExec, log, metrics });
  const probes = new ProbeServer({
    ...config.metricsAddress,
    registry: withWorkerMetrics(metrics.registry, () => dnsProcess),
    logger: log,
  });
  probes.addReadinessCheck("overlay", () => {
    const { ready, reason } = agent.readiness();
    if (!ready) throw new Error(reason);
    return true;
  });
  try {
    await probes.start();
  } catch (err) {
    log.error({ err: describeError(err) }, "cannot serve metrics; pass another --metrics-address");
    termination.dispose();
    return 1;
  }
  agent.start();
  let dnsProcess: DnsWorkers | undefined;
  const dns = config.dns.enabled
    ? hostDns(config, agent, termination.signal, log).then((started) => {
        dnsProcess = started;
        return started;
      })
    : undefined;
  if (!termination.signal.aborted) {
    await new Promise((done) => termination.signal.addEventListener("abort", done, { once: true }));
  }
  log.info("stopping; the bridge, VXLAN device and entries stay so running pods keep their network");
  await (await dns)?.stop();
  await agent.stop();
  await probes.stop();
  termination.dispose();
  return 0;
}
