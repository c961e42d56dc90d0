/** `skein dns` flags: parsed and checked before anything starts (pure). */
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { InvalidInputError } from "../../kit/errors.ts";
import { parseListenAddress } from "../../kit/serve.ts";
import { isDomain, normaliseName } from "./names.ts";
import type { ListenAddress } from "./responder.ts";
import { ipEndpoint, parseUpstream, type Upstream } from "./upstream.ts";

export interface DnsConfig {
  node?: string;
  kubeconfig?: string;
  network: string;
  listen: ListenAddress[];
  domain?: string;
  ttlSeconds?: number;
  upstreams?: Upstream[];
  cidr?: string;
  allow: string[];
  allowAnyClient: boolean;
  resolvConf: string;
  probes: boolean;
  upstreamTimeoutMs: number;
  metricsAddress?: { host: string; port: number };
  /** Processes answering on the same sockets (the kernel spreads datagrams across them). */
  workers: number;
}

export const USAGE = `usage: skein dns [flags]

Runs the node's DNS responder alone (in production the network agent hosts
it): names of pods that carry skein.io/dns-name, <pod>.<namespace> and reverse
lookups under the Network's domain, answers rotated across healthy pods;
everything else forwarded upstream. Probes the pods on this node that ask for
it and reports their health on the pod (condition skein.io/dns-healthy).

flags:
  --node NAME                this node's name, for health probes (default: $NODE_NAME; none: no probes)
  --kubeconfig PATH          API server access (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --network NAME             the Network whose dns settings apply (default: skein)
  --listen ADDR[:PORT]       where to answer, UDP and TCP; repeatable (default: 0.0.0.0:53)
  --domain NAME              serve this domain whatever the Network says
  --ttl SECONDS              answer TTL whatever the Network says
  --upstream ADDR[:PORT]     forward other names here; repeatable (default: the Network's, else resolv.conf)
  --cidr CIDR                the overlay, whatever the Network says (its clients are answered)
  --allow CIDR               also answer clients from here; repeatable
  --allow-any-client         answer anyone (the default answers only the overlay and this node)
  --resolv-conf PATH         where default upstreams come from (default: /etc/resolv.conf)
  --upstream-timeout-ms N    deadline for one forwarded query (default: 2000)
  --no-probes                do not probe pods or write their health
  --metrics-address HOST:PORT  serve /metrics here
  --workers N                processes answering on the same sockets, to use more cores (default: 1)
  --help                     this text`;

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      node: { type: "string" },
      kubeconfig: { type: "string" },
      network: { type: "string" },
      listen: { type: "string", multiple: true },
      domain: { type: "string" },
      ttl: { type: "string" },
      upstream: { type: "string", multiple: true },
      cidr: { type: "string" },
      allow: { type: "string", multiple: true },
      "allow-any-client": { type: "boolean" },
      "resolv-conf": { type: "string" },
      "upstream-timeout-ms": { type: "string" },
      "no-probes": { type: "boolean" },
      "metrics-address": { type: "string" },
      workers: { type: "string" },
      help: { type: "boolean" },
    },
  });
}

/** "10.0.0.1:53", "[fd00::1]:53": the form parseListen and parseUpstream read back. */
function hostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * The `skein dns` flags that give a worker process this config (pure; the
 * inverse of parseDnsFlags for everything a worker needs). Workers get their
 * settings as flags so each is an ordinary `skein dns` that can be read in `ps`.
 */
export function dnsArgv(config: Omit<DnsConfig, "metricsAddress" | "workers">): string[] {
  const argv = [`--network=${config.network}`];
  if (config.node !== undefined) argv.push(`--node=${config.node}`);
  if (config.kubeconfig !== undefined) argv.push(`--kubeconfig=${config.kubeconfig}`);
  for (const l of config.listen) argv.push(`--listen=${hostPort(l.address, l.port ?? 53)}`);
  if (config.domain !== undefined) argv.push(`--domain=${config.domain}`);
  if (config.ttlSeconds !== undefined) argv.push(`--ttl=${config.ttlSeconds}`);
  for (const u of config.upstreams ?? []) argv.push(`--upstream=${hostPort(u.address, u.port)}`);
  if (config.cidr !== undefined) argv.push(`--cidr=${config.cidr}`);
  for (const a of config.allow) argv.push(`--allow=${a}`);
  if (config.allowAnyClient) argv.push("--allow-any-client");
  argv.push(`--resolv-conf=${config.resolvConf}`, `--upstream-timeout-ms=${config.upstreamTimeoutMs}`);
  if (!config.probes) argv.push("--no-probes");
  return argv;
}

/** "10.0.0.1", "10.0.0.1:5353", "[fd00::1]:53", "fd00::1"; port 0 (any free port) too, unlike an upstream. */
export function parseListen(text: string): ListenAddress {
  const endpoint = ipEndpoint(text);
  if (!endpoint) {
    throw new InvalidInputError(
      `--listen ${JSON.stringify(text)} is not an IP address with an optional port: use 10.244.1.1, 10.244.1.1:53 or [fd00::1]:53`,
    );
  }
  return endpoint;
}

function cidr(flag: string, text: string): string {
  const [address = "", prefix = "", extra] = text.split("/");
  const family = isIP(address);
  const bits = Number(prefix);
  if (extra !== undefined || family === 0 || !/^\d{1,3}$/.test(prefix) || bits > (family === 4 ? 32 : 128)) {
    throw new InvalidInputError(
      `--${flag} ${JSON.stringify(text)} is not a network in CIDR notation, e.g. 10.244.0.0/16`,
    );
  }
  return text;
}

function integer(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw new InvalidInputError(
      `--${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

/** The parsed config, or "help" when --help was asked for. */
export function parseDnsFlags(argv: string[], env: NodeJS.ProcessEnv): DnsConfig | "help" {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    throw new InvalidInputError(`${(err as Error).message}; see --help`);
  }
  const v = parsed.values;
  if (v.help) return "help";
  const config: DnsConfig = {
    network: v.network ?? "skein",
    listen: (v.listen ?? ["0.0.0.0:53"]).map(parseListen),
    allow: (v.allow ?? []).map((c) => cidr("allow", c)),
    allowAnyClient: v["allow-any-client"] ?? false,
    resolvConf: v["resolv-conf"] ?? "/etc/resolv.conf",
    probes: !(v["no-probes"] ?? false),
    upstreamTimeoutMs: integer("upstream-timeout-ms", v["upstream-timeout-ms"] ?? "2000", 10, 60_000),
    workers: integer("workers", v.workers ?? "1", 1, 64),
  };
  const node = v.node ?? env.NODE_NAME;
  if (node) config.node = node;
  if (v.kubeconfig) config.kubeconfig = v.kubeconfig;
  if (v.domain !== undefined) {
    const domain = normaliseName(v.domain);
    if (!isDomain(domain)) {
      throw new InvalidInputError(
        `--domain ${JSON.stringify(v.domain)} is not a DNS name of lowercase letters, digits, '-' and '.', e.g. skein.local`,
      );
    }
    config.domain = domain;
  }
  if (v.ttl !== undefined) config.ttlSeconds = integer("ttl", v.ttl, 0, 3600);
  if (v.upstream) {
    try {
      config.upstreams = v.upstream.map(parseUpstream);
    } catch (err) {
      throw new InvalidInputError(`--upstream: ${(err as Error).message}`);
    }
  }
  if (v.cidr !== undefined) config.cidr = cidr("cidr", v.cidr);
  if (v["metrics-address"] !== undefined) {
    // The same form as every component's --metrics-address.
    const metrics = parseListenAddress(v["metrics-address"]);
    if (metrics.port === 0) throw new InvalidInputError("--metrics-address needs a port, e.g. 0.0.0.0:9403");
    config.metricsAddress = metrics;
  }
  return config;
}
