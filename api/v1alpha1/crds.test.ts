/**
 * The skein.io CRDs against the real kube-apiserver: they install, default,
 * validate (every CEL rule rejects bad input with a message that says what to
 * fix, and accepts good input), keep immutable fields immutable, and show the
 * story in `kubectl get`.
 */
import { randomBytes } from "node:crypto";
import { ApiException, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../../kit/exec.ts";
import { loadCrds, type OpenApiSchema } from "../../scripts/gen-api-types.ts";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { toolPath } from "../../test/fixtures/tools.ts";
import { API_VERSION, GROUP, KINDS, type Kind, VERSION } from "./index.ts";
import { applyCrds } from "./install.ts";

type Spec = Record<string, unknown>;
type Obj = { metadata: { name: string; resourceVersion?: string }; spec: Spec; status?: unknown };

let kubeConfig: KubeConfig;
let kubeconfigPath: string;
let api: CustomObjectsApi;
const created: { kind: Kind; name: string }[] = [];
const runId = randomBytes(3).toString("hex");
let seq = 0;

const uniqueName = (kind: Kind) => `t${runId}-${kind.toLowerCase()}-${seq++}`;
const ref = (kind: Kind) => ({ group: GROUP, version: VERSION, plural: KINDS[kind].plural });

async function create(kind: Kind, spec: Spec, name = uniqueName(kind)): Promise<Obj> {
  const body = { apiVersion: API_VERSION, kind, metadata: { name }, spec };
  const obj = (await api.createClusterCustomObject({ ...ref(kind), body })) as Obj;
  created.push({ kind, name });
  return obj;
}

async function get(kind: Kind, name: string): Promise<Obj> {
  return (await api.getClusterCustomObject({ ...ref(kind), name })) as Obj;
}

async function updateSpec(kind: Kind, name: string, change: (spec: Spec) => Spec): Promise<Obj> {
  const current = await get(kind, name);
  const body = { ...current, spec: change(structuredClone(current.spec)) };
  return (await api.replaceClusterCustomObject({ ...ref(kind), name, body })) as Obj;
}

async function setStatus(kind: Kind, name: string, status: unknown): Promise<void> {
  const current = await get(kind, name);
  await api.replaceClusterCustomObjectStatus({ ...ref(kind), name, body: { ...current, status } });
}

/** The API server's refusal message, or a failure when it accepted. */
async function rejection(attempt: Promise<unknown>): Promise<string> {
  const err = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err === undefined) throw new Error("the API server accepted an object it should have refused");
  if (!(err instanceof ApiException)) throw err;
  expect(err.code).toBe(422);
  const body = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
  return (body as { message: string }).message;
}

async function kubectl(...args: string[]): Promise<string> {
  return (await run([toolPath("kubectl"), `--kubeconfig=${kubeconfigPath}`, ...args])).stdout;
}

/** `kubectl get` table rows as objects keyed by header; columns start where their header starts. */
function parseTable(text: string): Record<string, string>[] {
  const [header = "", ...rows] = text.split("\n").filter((l) => l.trim() !== "");
  const starts = [...header.matchAll(/\S+/g)].map((m) => ({ name: m[0], at: m.index }));
  return rows.map((row) =>
    Object.fromEntries(
      starts.map(({ name, at }, i) => [name, row.slice(at, starts[i + 1]?.at ?? row.length).trim()]),
    ),
  );
}

beforeAll(async () => {
  const server = sharedApiServer();
  kubeConfig = server.kubeConfig();
  kubeconfigPath = server.kubeconfigPath;
  api = kubeConfig.makeApiClient(CustomObjectsApi);
  await applyCrds(kubeConfig);
});

afterAll(async () => {
  for (const { kind, name } of created.reverse()) {
    await api.deleteClusterCustomObject({ ...ref(kind), name }).catch((e: unknown) => {
      if (!(e instanceof ApiException && e.code === 404)) throw e;
    });
  }
});

describe("applyCrds", () => {
  it("installs each CRD's versions exactly as written (nothing lost in serialization)", async () => {
    for (const { file, crd } of await loadCrds()) {
      const name = `${crd.spec.names.plural}.${GROUP}`;
      const installed = await kubectl("get", "crd", name, "-o", "json");
      expect(JSON.parse(installed).spec.versions, file).toEqual(crd.spec.versions);
    }
  });

  it("applies every CRD server-side, idempotently, and waits until each is Established", async () => {
    const names = await applyCrds(kubeConfig);
    expect(names.sort()).toEqual(
      Object.values(KINDS)
        .map(({ plural }) => `${plural}.${GROUP}`)
        .sort(),
    );
    const listed = await kubectl(
      "get",
      "crd",
      "-o",
      'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}',
    );
    for (const name of names) expect(listed).toContain(`${name}=True`);
  });
});

// Valid objects of every kind; cases below change one thing at a time.
const node = "node-a";
const volume = (): Spec => ({ capacityBytes: 1_073_741_824, ownerNode: node });
const network = (): Spec => ({ cidr: "10.244.0.0/16", vni: 42 });
const migration = (): Spec => ({ volume: "data", targetNode: "node-b" });
const nodeSubnet = (): Spec => ({
  network: "overlay",
  node,
  block: "10.244.3.0/24",
  gateway: "10.244.3.1",
  vtepAddress: "192.168.10.5",
  vtepMAC: "0a:58:0a:f4:03:01",
});

/** A CEL rule of one CRD: its kind, where it sits in the schema, and its expression. */
interface RuleId {
  kind: Kind;
  at: string;
  rule: string;
}

interface CreateCase extends RuleId {
  /** What the case shows. */
  what: string;
  bad: Spec;
  good: Spec;
  message: RegExp;
}

interface UpdateCase extends RuleId {
  what: string;
  initial: Spec;
  bad: (spec: Spec) => Spec;
  good: (spec: Spec) => Spec;
  message: RegExp;
}

const IMMUTABLE = "self == oldSelf";
/** Stands for the one rule at `at`, when its text is too long to repeat here. */
const ONLY_RULE = "*";

const createCases: CreateCase[] = [
  {
    kind: "Volume",
    at: "spec",
    rule: "!self.autoFailover || self.replicas > 0",
    what: "autoFailover needs a replica to promote",
    bad: { ...volume(), autoFailover: true },
    good: { ...volume(), autoFailover: true, replicas: 1 },
    message: /spec\.autoFailover: .*set replicas to 1 or more, or set autoFailover to false/,
  },
  {
    kind: "Volume",
    at: "spec.zfsProperties",
    rule: "self.all(k, k.matches('^[a-z][a-z0-9_.:-]*$') && size(k) <= 256)",
    what: "zfsProperties keys are ZFS property names",
    bad: { ...volume(), zfsProperties: { Compression: "lz4" } },
    good: { ...volume(), zfsProperties: { compression: "lz4", "com.example:tag": "x" } },
    message: /zfsProperties keys must be ZFS property names/,
  },
  {
    kind: "Volume",
    at: "spec.zfsProperties",
    rule: "!self.exists(k, k in ['mountpoint', 'canmount', 'quota', 'refquota', 'readonly'])",
    what: "zfsProperties may not set what Skein manages",
    bad: { ...volume(), zfsProperties: { refquota: "1G" } },
    good: { ...volume(), zfsProperties: { recordsize: "16K" } },
    message: /Skein manages them \(set the size with capacityBytes\)/,
  },
  {
    kind: "Volume",
    at: "spec.source",
    rule: "has(self.snapshot) != has(self.volume)",
    what: "a source names exactly one of snapshot or volume",
    bad: { ...volume(), source: { snapshot: "s1", volume: "v1" } },
    good: { ...volume(), source: { snapshot: "s1" } },
    message: /source must name exactly one of snapshot or volume/,
  },
  {
    kind: "VolumeMigration",
    at: "spec",
    rule: "!has(self.sourceNode) || self.sourceNode != self.targetNode",
    what: "a migration moves to another node",
    bad: { ...migration(), sourceNode: "node-b" },
    good: { ...migration(), sourceNode: "node-a" },
    message: /spec\.sourceNode: .*set targetNode to the node the volume should move to/,
  },
  {
    kind: "Network",
    at: "spec.cidr",
    rule: "isCIDR(self) && cidr(self).ip().family() == 4",
    what: "cidr is an IPv4 CIDR (not IPv6)",
    bad: { ...network(), cidr: "fd00::/64" },
    good: { ...network(), cidr: "10.96.0.0/12" },
    message: /cidr must be an IPv4 network in CIDR notation, e\.g\. 10\.244\.0\.0\/16/,
  },
  {
    kind: "Network",
    at: "spec.cidr",
    rule: "isCIDR(self) && cidr(self).ip().family() == 4",
    what: "cidr is an IPv4 CIDR (not a bare address)",
    bad: { ...network(), cidr: "10.244.0.0" },
    good: { ...network(), cidr: "192.168.128.0/17" },
    message: /cidr must be an IPv4 network in CIDR notation/,
  },
  {
    kind: "Network",
    at: "spec.cidr",
    rule: "!isCIDR(self) || cidr(self).masked() == cidr(self)",
    what: "cidr has no bits set after its prefix",
    bad: { ...network(), cidr: "10.244.1.0/16" },
    good: { ...network(), cidr: "10.244.0.0/16" },
    message: /cidr has bits set after its prefix length: write the network address/,
  },
  {
    kind: "Network",
    at: "spec.cidr",
    rule: "!isCIDR(self) || cidr(self).prefixLength() <= 29",
    what: "a network too small to split says so",
    bad: { ...network(), cidr: "10.1.2.0/30", nodeBlockPrefixLength: 30 },
    good: { ...network(), cidr: "10.1.2.0/29", nodeBlockPrefixLength: 30 },
    message: /cidr is too small to split into node blocks: use a prefix length of 29 or less/,
  },
  {
    kind: "Network",
    at: "spec",
    rule: "!isCIDR(self.cidr) || self.nodeBlockPrefixLength > cidr(self.cidr).prefixLength()",
    what: "node blocks are smaller than the network",
    bad: { ...network(), nodeBlockPrefixLength: 16 },
    good: { ...network(), nodeBlockPrefixLength: 17 },
    message:
      /spec\.nodeBlockPrefixLength: .*must be longer than the prefix length of cidr.*e\.g\. 24 for a \/16/,
  },
  {
    kind: "Network",
    at: "spec.dns.domain",
    rule: "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
    what: "the DNS domain is a DNS name",
    bad: { ...network(), dns: { domain: "Skein_Local" } },
    good: { ...network(), dns: { domain: "pods.example" } },
    message: /domain must be a DNS name .*e\.g\. skein\.local/,
  },
  ...["10.0.0.10:0", "10.0.0.10:65536", "dns.google", "[fd00::10]", "10.0.0.300"].map(
    (upstream): CreateCase => ({
      kind: "Network",
      at: "spec.dns.upstreams[]",
      rule: ONLY_RULE,
      what: `the DNS upstream ${upstream} is refused; IPv4/IPv6 with or without port accepted`,
      bad: { ...network(), dns: { upstreams: [upstream] } },
      good: {
        ...network(),
        dns: { upstreams: ["10.0.0.10", "10.0.0.10:53", "fd00::10", "[fd00::10]:5353"] },
      },
      message: /each upstream must be an IP address, optionally with a port from 1 to 65535/,
    }),
  ),
  {
    kind: "NodeSubnet",
    at: "spec",
    rule: "!isCIDR(self.block) || !isIP(self.gateway) || cidr(self.block).containsIP(self.gateway)",
    what: "the gateway lies inside the block",
    bad: { ...nodeSubnet(), gateway: "10.244.4.1" },
    good: { ...nodeSubnet(), gateway: "10.244.3.254" },
    message: /gateway 10\.244\.4\.1 is outside block 10\.244\.3\.0\/24: use an address inside the block/,
  },
  {
    kind: "NodeSubnet",
    at: "spec.block",
    rule: "isCIDR(self) && cidr(self).ip().family() == 4 && cidr(self).masked() == cidr(self)",
    what: "block is a canonical IPv4 CIDR",
    bad: { ...nodeSubnet(), block: "10.244.3.1/24" },
    good: { ...nodeSubnet(), block: "10.244.2.0/23" },
    message: /block must be an IPv4 network in CIDR notation with no bits set after the prefix/,
  },
  {
    kind: "NodeSubnet",
    at: "spec.gateway",
    rule: "isIP(self) && ip(self).family() == 4",
    what: "gateway is an IPv4 address",
    bad: { ...nodeSubnet(), gateway: "gw" },
    good: { ...nodeSubnet(), gateway: "10.244.3.1" },
    message: /gateway must be an IPv4 address, e\.g\. 10\.244\.3\.1/,
  },
  {
    kind: "NodeSubnet",
    at: "spec.vtepAddress",
    rule: "isIP(self)",
    what: "vtepAddress is an IP address (v4 or v6)",
    bad: { ...nodeSubnet(), vtepAddress: "node-a" },
    good: { ...nodeSubnet(), vtepAddress: "fd00:10::5" },
    message: /vtepAddress must be an IP address/,
  },
  {
    kind: "NodeSubnet",
    at: "spec.vtepMAC",
    rule: "self.matches('^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')",
    what: "vtepMAC is a lowercase colon-separated MAC",
    bad: { ...nodeSubnet(), vtepMAC: "0A-58-0A-F4-03-01" },
    good: { ...nodeSubnet(), vtepMAC: "0a:58:0a:f4:03:ff" },
    message: /vtepMAC must be a MAC address in lowercase hex with colons/,
  },
];

const updateCases: UpdateCase[] = [
  {
    kind: "Volume",
    at: "spec",
    rule: "has(self.source) == has(oldSelf.source)",
    what: "a source cannot be added to an existing volume",
    initial: volume(),
    bad: (s) => ({ ...s, source: { volume: "other" } }),
    good: (s) => ({ ...s, replicas: 2 }),
    message: /source can only be given when the volume is created; .*create a new Volume with that source/,
  },
  {
    kind: "Volume",
    at: "spec.capacityBytes",
    rule: "self >= oldSelf",
    what: "a volume grows but never shrinks",
    initial: volume(),
    bad: (s) => ({ ...s, capacityBytes: 1024 }),
    good: (s) => ({ ...s, capacityBytes: 2_147_483_648 }),
    message: /capacityBytes can only grow .*set it to its current value or more/,
  },
  {
    kind: "Volume",
    at: "spec.source",
    rule: IMMUTABLE,
    what: "a volume's source never changes",
    initial: { ...volume(), source: { snapshot: "s1" } },
    bad: (s) => ({ ...s, source: { snapshot: "s2" } }),
    good: (s) => ({ ...s, zfsProperties: { compression: "zstd" } }),
    message: /source cannot change after creation/,
  },
  {
    kind: "Snapshot",
    at: "spec.volume",
    rule: IMMUTABLE,
    what: "a snapshot belongs to one volume",
    initial: { volume: "data" },
    bad: () => ({ volume: "other" }),
    good: (s) => s,
    message: /volume cannot change after creation: a snapshot belongs to one volume/,
  },
  {
    kind: "VolumeMigration",
    at: "spec",
    rule: "has(self.sourceNode) == has(oldSelf.sourceNode)",
    what: "sourceNode cannot be added later",
    initial: migration(),
    bad: (s) => ({ ...s, sourceNode: "node-a" }),
    good: (s) => ({ ...s, force: true }),
    message: /sourceNode can only be given when the migration is created/,
  },
  {
    kind: "VolumeMigration",
    at: "spec.volume",
    rule: IMMUTABLE,
    what: "a migration's volume never changes",
    initial: migration(),
    bad: (s) => ({ ...s, volume: "other" }),
    good: (s) => ({ ...s, reason: "drain" }),
    message: /volume cannot change after creation; create a new VolumeMigration/,
  },
  {
    kind: "VolumeMigration",
    at: "spec.targetNode",
    rule: IMMUTABLE,
    what: "a migration's target never changes",
    initial: migration(),
    bad: (s) => ({ ...s, targetNode: "node-c" }),
    good: (s) => ({ ...s, force: true }),
    message: /targetNode cannot change after creation; create a new VolumeMigration to that node/,
  },
  {
    kind: "VolumeMigration",
    at: "spec.sourceNode",
    rule: IMMUTABLE,
    what: "a migration's source never changes",
    initial: { ...migration(), sourceNode: "node-a" },
    bad: (s) => ({ ...s, sourceNode: "node-c" }),
    good: (s) => ({ ...s, reason: "user" }),
    message: /sourceNode cannot change after creation/,
  },
  ...(
    [
      ["cidr", "10.245.0.0/16", /cidr cannot change while pods hold addresses from it: create a new Network/],
      ["nodeBlockPrefixLength", 26, /nodeBlockPrefixLength cannot change while nodes hold blocks/],
      ["vni", 43, /vni cannot change while pods are attached: create a new Network/],
    ] as const
  ).map(
    ([field, value, message]): UpdateCase => ({
      kind: "Network",
      at: `spec.${field}`,
      rule: IMMUTABLE,
      what: `a network's ${field} never changes; port, mtu and dns may`,
      initial: network(),
      bad: (s) => ({ ...s, [field]: value }),
      good: (s) => ({
        ...s,
        mtu: 1400,
        port: 8472,
        dns: { domain: "pods.example", upstreams: ["10.0.0.10"] },
      }),
      message,
    }),
  ),
  ...(
    [
      ["network", "other"],
      ["node", "node-z"],
      ["block", "10.244.9.0/24"],
      ["gateway", "10.244.3.2"],
      ["vtepMAC", "0a:58:0a:f4:03:02"],
    ] as const
  ).map(
    ([field, value]): UpdateCase => ({
      kind: "NodeSubnet",
      at: `spec.${field}`,
      rule: IMMUTABLE,
      what: `a NodeSubnet's ${field} never changes; vtepAddress follows the node`,
      initial: nodeSubnet(),
      bad: (s) => ({ ...s, [field]: value }),
      good: (s) => ({ ...s, vtepAddress: "192.168.10.77" }),
      message: new RegExp(
        `${field} cannot change.*(delete this NodeSubnet and let the operator allocate a new one)`,
      ),
    }),
  ),
  {
    kind: "StoragePool",
    at: "spec.node",
    rule: IMMUTABLE,
    what: "a pool stays on its node",
    initial: { node, pool: "tank/skein" },
    bad: (s) => ({ ...s, node: "node-b" }),
    good: (s) => ({ ...s, pool: "tank2/skein" }),
    message: /node cannot change; delete this StoragePool/,
  },
];

describe("CEL validation on create", () => {
  it.each(createCases)("$kind $at: $what", async (c) => {
    const message = await rejection(create(c.kind, c.bad));
    expect(message).toMatch(c.message);
    await create(c.kind, c.good);
  });
});

describe("CEL validation on update", () => {
  it.each(updateCases)("$kind $at: $what", async (c) => {
    const { metadata } = await create(c.kind, c.initial);
    const message = await rejection(updateSpec(c.kind, metadata.name, c.bad));
    expect(message).toMatch(c.message);
    const expected = c.good((await get(c.kind, metadata.name)).spec);
    const updated = await updateSpec(c.kind, metadata.name, c.good);
    // The server re-applies defaults to what the update left out.
    expect(updated.spec).toMatchObject(expected);
  });
});

/** Every x-kubernetes-validations rule in crds/, with where it sits. */
async function allRules(): Promise<RuleId[]> {
  const rules: RuleId[] = [];
  const walk = (kind: Kind, schema: OpenApiSchema, at: string) => {
    for (const v of (schema["x-kubernetes-validations"] ?? []) as { rule: string }[]) {
      rules.push({ kind, at, rule: v.rule.replace(/\s+/g, " ").trim() });
    }
    for (const [field, child] of Object.entries(schema.properties ?? {})) walk(kind, child, `${at}.${field}`);
    if (schema.items) walk(kind, schema.items, `${at}[]`);
  };
  for (const { crd } of await loadCrds()) {
    const spec = crd.spec.versions[0]?.schema?.openAPIV3Schema?.properties?.spec;
    if (spec) walk(crd.spec.names.kind as Kind, spec, "spec");
  }
  return rules;
}

describe("test coverage of the CEL rules", () => {
  it("has a rejecting and an accepting case for every rule in crds/", async () => {
    const covered = [...createCases, ...updateCases];
    const matches = (r: RuleId, c: RuleId) =>
      c.kind === r.kind && c.at === r.at && (c.rule === ONLY_RULE || c.rule === r.rule);
    const untested = (await allRules()).filter((r) => !covered.some((c) => matches(r, c)));
    expect(untested).toEqual([]);
  });
});

describe("defaults", () => {
  it("fills Volume replicas and autoFailover", async () => {
    const { spec } = await create("Volume", volume());
    expect(spec).toMatchObject({ replicas: 0, autoFailover: false });
  });
  it("fills Network block size, port and DNS settings", async () => {
    const { spec } = await create("Network", network());
    expect(spec).toEqual({
      cidr: "10.244.0.0/16",
      vni: 42,
      nodeBlockPrefixLength: 24,
      port: 4789,
      dns: { domain: "skein.local", ttlSeconds: 2 },
    });
  });
  it("fills VolumeMigration force", async () => {
    const { spec } = await create("VolumeMigration", migration());
    expect(spec.force).toBe(false);
  });
});

describe("schema bounds", () => {
  it.each([
    [
      "Network",
      { ...network(), vni: 16_777_216 },
      /spec\.vni: Invalid value: 16777216: .*less than or equal to 16777215/,
    ],
    ["Network", { ...network(), vni: 0 }, /spec\.vni: Invalid value: 0: .*greater than or equal to 1/],
    ["Network", { ...network(), mtu: 100 }, /spec\.mtu: .*greater than or equal to 576/],
    [
      "Network",
      { ...network(), nodeBlockPrefixLength: 31 },
      /spec\.nodeBlockPrefixLength: .*less than or equal to 30/,
    ],
    ["Volume", { ...volume(), capacityBytes: 0 }, /spec\.capacityBytes: .*greater than or equal to 1/],
    [
      "Volume",
      { ...volume(), accessMode: "ReadWriteMany" },
      /spec\.accessMode: Unsupported value: "ReadWriteMany"/,
    ],
    ["Volume", { capacityBytes: 1 }, /spec\.ownerNode: Required value/],
  ] as const)("refuses %s %j", async (kind, spec, message) => {
    expect(await rejection(create(kind, spec))).toMatch(message);
  });
});

describe("status subresource", () => {
  it("ignores status written with the object and takes it through /status", async () => {
    const { metadata } = await create("Volume", volume());
    await setStatus("Volume", metadata.name, { phase: "Ready", observedGeneration: 1 });
    await updateSpec("Volume", metadata.name, (s) => ({ ...s, replicas: 1 }));
    const current = await get("Volume", metadata.name);
    expect(current.status).toEqual({ phase: "Ready", observedGeneration: 1 });
  });

  it("refuses conditions that are not metav1.Condition-shaped", async () => {
    const { metadata } = await create("Network", network());
    const bad = { conditions: [{ type: "Ready", status: "Yes", reason: "Allocated", message: "" }] };
    const message = await rejection(setStatus("Network", metadata.name, bad));
    expect(message).toMatch(/status\.conditions\[0\]\.status: Unsupported value: "Yes"/);
    expect(message).toMatch(/status\.conditions\[0\]\.lastTransitionTime: Required value/);
  });
});

describe("kubectl get", () => {
  it("shows a Volume's phase, node, capacity, usage and replicas", async () => {
    const { metadata } = await create("Volume", { ...volume(), replicas: 1 });
    await setStatus("Volume", metadata.name, {
      phase: "Ready",
      node,
      usedBytes: 4096,
      dataset: "tank/skein/v1",
      replicas: [{ node: "node-b", lagSeconds: 3 }],
    });
    const [row] = parseTable(await kubectl("get", "svol", metadata.name, "-o", "wide"));
    expect(row).toMatchObject({
      NAME: metadata.name,
      PHASE: "Ready",
      NODE: node,
      CAPACITY: "1073741824",
      USED: "4096",
      REPLICAS: "1",
      OWNER: node,
      DATASET: "tank/skein/v1",
    });
    expect(row?.AGE).toMatch(/^\d+s$/);
  });

  it("shows a VolumeMigration's volume, target, phase, round, progress and downtime", async () => {
    const { metadata } = await create("VolumeMigration", { ...migration(), reason: "drain" });
    await setStatus("VolumeMigration", metadata.name, {
      phase: "Replicating",
      sourceNode: node,
      round: 2,
      bytesSent: 420,
      bytesTotal: 1000,
      progressPercent: 42,
    });
    const [row] = parseTable(await kubectl("get", "svm", metadata.name, "-o", "wide"));
    expect(row).toMatchObject({
      VOLUME: "data",
      TARGET: "node-b",
      PHASE: "Replicating",
      ROUND: "2",
      "PROGRESS%": "42",
      "DOWNTIME(MS)": "",
      SOURCE: node,
      REASON: "drain",
    });
  });

  it("shows a Network's CIDR, VNI, block size, blocks and readiness", async () => {
    const { metadata } = await create("Network", network());
    await setStatus("Network", metadata.name, {
      allocatedBlocks: 3,
      capacityBlocks: 256,
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "Allocated",
          message: "",
          lastTransitionTime: "2026-01-01T00:00:00Z",
        },
      ],
    });
    const [row] = parseTable(await kubectl("get", "snet", metadata.name));
    expect(row).toMatchObject({
      CIDR: "10.244.0.0/16",
      VNI: "42",
      BLOCK: "24",
      BLOCKS: "3",
      CAPACITY: "256",
      READY: "True",
    });
  });

  it("shows a NodeSubnet's network, node, block and VTEP", async () => {
    const { metadata } = await create("NodeSubnet", nodeSubnet());
    const [row] = parseTable(await kubectl("get", "snsub", metadata.name, "-o", "wide"));
    expect(row).toMatchObject({
      NETWORK: "overlay",
      NODE: node,
      BLOCK: "10.244.3.0/24",
      VTEP: "192.168.10.5",
      GATEWAY: "10.244.3.1",
      MAC: "0a:58:0a:f4:03:01",
    });
  });

  it("shows a Snapshot's volume, readiness, size and node", async () => {
    const { metadata } = await create("Snapshot", { volume: "data" });
    await setStatus("Snapshot", metadata.name, { readyToUse: true, sizeBytes: 8192, node });
    const [row] = parseTable(await kubectl("get", "ssnap", metadata.name));
    expect(row).toMatchObject({ VOLUME: "data", READY: "true", SIZE: "8192", NODE: node });
  });

  it("shows a StoragePool's node, pool, size and free space", async () => {
    const { metadata } = await create("StoragePool", { node, pool: "tank/skein" });
    await setStatus("StoragePool", metadata.name, {
      sizeBytes: 1000,
      freeBytes: 600,
      capabilities: ["resumableSend"],
      lastUpdateTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    });
    const [row] = parseTable(await kubectl("get", "spool", metadata.name));
    expect(row).toMatchObject({ NODE: node, POOL: "tank/skein", SIZE: "1000", FREE: "600" });
    expect(row?.UPDATED).toMatch(/^\d+s$/);
  });

  it("lists every kind under the skein category", async () => {
    const names = await kubectl("get", "skein", "-o", "name");
    for (const { kind } of Object.values(KINDS)) {
      expect(names).toContain(`${kind.toLowerCase()}.${GROUP}/t${runId}-`);
    }
  });
});

describe("selectable fields", () => {
  it("lets an agent list only its node's NodeSubnets", async () => {
    const mine = await create("NodeSubnet", { ...nodeSubnet(), node: `n${runId}` });
    await create("NodeSubnet", { ...nodeSubnet(), node: `m${runId}` });
    const list = (await api.listClusterCustomObject({
      ...ref("NodeSubnet"),
      fieldSelector: `spec.node=n${runId}`,
    })) as { items: Obj[] };
    expect(list.items.map((o) => o.metadata.name)).toEqual([mine.metadata.name]);
  });
});
