/**
 * The Helm chart (charts/skein) and the image recipe beside it.
 *
 * - The chart lints, renders manifests that parse, and turns values into the
 *   objects and flags the components expect (the net-agent's flags go through
 *   its real flag parser).
 * - RBAC is least privilege: no wildcards, no Secret outside the release
 *   namespace, and a table of what each component must and must not be able
 *   to do, asked of the real API server's authorizer (SubjectAccessReview).
 * - The chart's crds/ is the top-level crds/, byte for byte.
 * - `helm install` into the shared API server creates every rendered object,
 *   and `helm uninstall` removes every one of them, cluster-scoped ones too.
 * - A first install into an empty API server installs the CRDs from crds/
 *   before the default Network that needs them.
 * - The Dockerfile copies only paths that exist, that .dockerignore keeps,
 *   and that hold every source file the bundles are built from.
 *
 * No pod runs here (no kubelet, no controller-manager): the workloads are
 * checked as objects, not as processes.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ApiException,
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
} from "@kubernetes/client-node";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { applyCrds } from "../api/v1alpha1/install.ts";
import { parseAgentFlags } from "../cni/agent/flags.ts";
import { parseControllerFlags, parseNodeFlags } from "../csi/driver.ts";
import { zfsPropertiesFromParameters } from "../csi/zfs/properties.ts";
import { ExecError, run } from "../kit/exec.ts";
import { eventually, testNamespace } from "../kit/k8s/testing.ts";
import { type ApiServer, freePort, startApiServer } from "../test/fixtures/apiserver.ts";
import { createNode } from "../test/fixtures/objects.ts";
import { startProcess, waitUntilReady } from "../test/fixtures/process.ts";
import { sharedApiServer } from "../test/fixtures/shared.ts";
import { toolPath } from "../test/fixtures/tools.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const CHART = join(REPO, "charts", "skein");
const NAMESPACE = "skein-system";
const DRIVER = "zfs.csi.skein.io";

interface Manifest extends KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; mountPropagation?: string }[];
}

interface PodSpec {
  serviceAccountName: string;
  hostNetwork?: boolean;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: { name: string; hostPath?: { path: string }; emptyDir?: object }[];
}

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

// Helm keeps a cache and config under $HOME by default; tests keep theirs apart.
const helmHome = mkdtempSync(join(tmpdir(), "skein-helm-"));
afterAll(() => rmSync(helmHome, { recursive: true, force: true }));

function helm(args: string[], kubeconfig?: string) {
  return run([toolPath("helm"), ...args, ...(kubeconfig ? ["--kubeconfig", kubeconfig] : [])], {
    timeoutMs: 90_000,
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(helmHome, "cache"),
      HELM_CONFIG_HOME: join(helmHome, "config"),
      HELM_DATA_HOME: join(helmHome, "data"),
    },
  });
}

/** Every document of a multi-document YAML stream; a document that does not parse fails the test. */
function parseManifests(text: string): Manifest[] {
  const manifests: Manifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0)
      throw new Error(`a rendered manifest does not parse: ${doc.errors[0]?.message}`);
    const value = doc.toJS() as Manifest | null;
    if (value !== null) manifests.push(value);
  }
  return manifests;
}

/** `helm template` of the chart with `--set` pairs and extra flags. */
async function render(
  set: Record<string, string | number | boolean> = {},
  flags: string[] = [],
  release = "skein",
  namespace = NAMESPACE,
): Promise<Manifest[]> {
  const sets = Object.entries(set).flatMap(([k, v]) => ["--set", `${k}=${v}`]);
  const { stdout } = await helm(["template", release, CHART, "--namespace", namespace, ...sets, ...flags]);
  return parseManifests(stdout);
}

function find(manifests: Manifest[], kind: string, name: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) {
    const have = manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(", ");
    throw new Error(`no ${kind}/${name} among the rendered objects: ${have}`);
  }
  return found;
}

function podSpec(workload: Manifest): PodSpec {
  return (workload.spec as { template: { spec: PodSpec } }).template.spec;
}

function container(pod: PodSpec, name: string): Container {
  const found = pod.containers.find((c) => c.name === name);
  if (!found) throw new Error(`no container ${name}; have ${pod.containers.map((c) => c.name).join(", ")}`);
  return found;
}

const names = (manifests: Manifest[], kind: string) =>
  manifests
    .filter((m) => m.kind === kind)
    .map((m) => m.metadata.name)
    .sort();

const rulesOf = (role: Manifest) => (role.rules as Rule[] | undefined) ?? [];

describe("helm lint", () => {
  it("passes with the default values, warnings counted as failures", async () => {
    const { stdout } = await helm(["lint", "--strict", CHART]);
    expect(stdout).toContain("0 chart(s) failed");
  });

  it("fails on a misspelt key", async () => {
    const failure = await helm(["lint", "--strict", CHART, "--set", "operater.replicas=3"]).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ExecError);
  });
});

describe("values.schema.json", () => {
  it.each([
    [
      { "csiNode.zfsBackend": "btrfs" },
      "at '/csiNode/zfsBackend': value must be one of 'openzfs', 'zfs-fuse'",
    ],
    [{ "csiNode.pool": "" }, "at '/csiNode/pool'"],
    [{ "network.cidr": "10.32.0.0" }, "at '/network/cidr'"],
    [{ "network.vni": 0 }, "at '/network/vni'"],
    [{ logLevel: "loud" }, "at '/logLevel'"],
    [{ "csiController.waitTimeoutSeconds": 0 }, "at '/csiController/waitTimeoutSeconds'"],
    [{ "operater.replicas": 3 }, "additional properties 'operater' not allowed"],
  ])("refuses %o and says where", async (set, message) => {
    const failure = await render(set).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ExecError);
    expect((failure as ExecError).stderr).toContain(message);
  });
});

describe("helm template", () => {
  let manifests: Manifest[];
  beforeAll(async () => {
    manifests = await render();
  });

  it("renders objects that each have a kind, a name and the release's labels", () => {
    expect(manifests.length).toBeGreaterThan(10);
    for (const m of manifests) {
      expect(m.apiVersion, `${m.kind}/${m.metadata?.name}`).toMatch(/\S/);
      expect(m.metadata.name, m.kind).toMatch(/^[a-z0-9][-a-z0-9.]*$/);
      expect(m.metadata.labels?.["app.kubernetes.io/instance"], `${m.kind}/${m.metadata.name}`).toBe("skein");
      expect(m.metadata.labels?.["app.kubernetes.io/managed-by"]).toBe("Helm");
    }
  });

  it("renders the four workloads, their service accounts and the storage and network objects", () => {
    expect(names(manifests, "Deployment")).toEqual(["skein-csi-controller", "skein-operator"]);
    expect(names(manifests, "DaemonSet")).toEqual(["skein-csi-node", "skein-net-agent"]);
    expect(names(manifests, "ServiceAccount")).toEqual([
      "skein-csi-controller",
      "skein-csi-node",
      "skein-net-agent",
      "skein-operator",
    ]);
    expect(names(manifests, "CSIDriver")).toEqual([DRIVER]);
    expect(names(manifests, "StorageClass")).toEqual(["skein"]);
    expect(names(manifests, "Network")).toEqual(["skein"]);
    // Not served by a cluster without the external-snapshotter: see the next test.
    expect(names(manifests, "VolumeSnapshotClass")).toEqual([]);
    expect(manifests.some((m) => m.kind === "CustomResourceDefinition")).toBe(false);
  });

  it("puts namespaced objects in the release namespace, and only the operator's Event role elsewhere", () => {
    const elsewhere = manifests
      .filter((m) => m.metadata.namespace !== undefined && m.metadata.namespace !== NAMESPACE)
      .map((m) => `${m.kind}/${m.metadata.namespace}/${m.metadata.name}`);
    expect(elsewhere.sort()).toEqual([
      "Role/default/skein-operator-events",
      "RoleBinding/default/skein-operator-events",
    ]);
  });

  it("adds the VolumeSnapshotClass and the snapshotter sidecar only where snapshot.storage.k8s.io/v1 is served", async () => {
    const withSnapshots = await render({}, ["--api-versions", "snapshot.storage.k8s.io/v1"]);
    const vsc = find(withSnapshots, "VolumeSnapshotClass", "skein");
    expect(vsc).toMatchObject({ driver: DRIVER, deletionPolicy: "Delete" });
    const controller = podSpec(find(withSnapshots, "Deployment", "skein-csi-controller"));
    expect(container(controller, "csi-snapshotter").args).toContain(
      "--feature-gates=CSIVolumeGroupSnapshot=false",
    );

    const without = podSpec(find(manifests, "Deployment", "skein-csi-controller"));
    expect(without.containers.map((c) => c.name)).not.toContain("csi-snapshotter");
  });

  it("registers the CSI driver so that ControllerPublishVolume (where volumes move) is always called", () => {
    expect(find(manifests, "CSIDriver", DRIVER).spec).toEqual({
      attachRequired: true,
      podInfoOnMount: true,
      fsGroupPolicy: "File",
      volumeLifecycleModes: ["Persistent"],
    });
  });

  it("makes a StorageClass that binds where the pod lands, grows, and passes its ZFS properties", async () => {
    const sc = find(manifests, "StorageClass", "skein");
    expect(sc).toMatchObject({
      provisioner: DRIVER,
      volumeBindingMode: "WaitForFirstConsumer",
      allowVolumeExpansion: true,
      reclaimPolicy: "Delete",
      parameters: { compression: "lz4" },
    });
    expect(sc.metadata.annotations?.["storageclass.kubernetes.io/is-default-class"]).toBeUndefined();

    const tuned = await render({
      "storageClass.name": "fast",
      "storageClass.isDefault": true,
      "storageClass.parameters.recordsize": "16K",
    });
    const fast = find(tuned, "StorageClass", "fast");
    expect(fast.metadata.annotations?.["storageclass.kubernetes.io/is-default-class"]).toBe("true");
    expect(fast.parameters).toEqual({ compression: "lz4", recordsize: "16K" });
    // The driver's own check of StorageClass parameters accepts what the chart passes.
    expect(zfsPropertiesFromParameters(fast.parameters as Record<string, string>)).toEqual({
      compression: "lz4",
      recordsize: "16384",
    });
  });

  it("makes the default Network from values, and none when network.create is false", async () => {
    expect(find(manifests, "Network", "skein").spec).toEqual({
      cidr: "10.32.0.0/12",
      nodeBlockPrefixLength: 24,
      vni: 4242,
      port: 4789,
      dns: { domain: "skein.local", ttlSeconds: 2 },
    });
    const custom = await render({
      "network.name": "lab",
      "network.cidr": "10.100.0.0/16",
      "network.vni": 7,
      "network.mtu": 1400,
      "network.dns.upstreams": "{10.96.0.10}",
    });
    expect(find(custom, "Network", "lab").spec).toMatchObject({
      cidr: "10.100.0.0/16",
      vni: 7,
      mtu: 1400,
      dns: { upstreams: ["10.96.0.10"] },
    });
    expect(names(await render({ "network.create": false }), "Network")).toEqual([]);
    expect(names(await render({ "storageClass.create": false }), "StorageClass")).toEqual([]);
  });

  it("runs the operator as two leader-elected, unprivileged replicas", () => {
    const deployment = find(manifests, "Deployment", "skein-operator");
    expect((deployment.spec as { replicas: number }).replicas).toBe(2);
    const pod = podSpec(deployment);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    const operator = container(pod, "operator");
    expect(operator.image).toBe("skein:0.1.0");
    expect(operator.args).toEqual([
      "operator",
      "--namespace=$(POD_NAMESPACE)",
      "--id=$(POD_NAME)",
      "--leader-elect=true",
      "--metrics-address=:9400",
      "--cutover-timeout=60",
    ]);
    expect(operator.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
  });

  it("runs the CSI controller with its sidecars on one socket, and an attacher that waits out migrations", () => {
    const pod = podSpec(find(manifests, "Deployment", "skein-csi-controller"));
    expect(pod.containers.map((c) => c.name)).toEqual([
      "csi-controller",
      "csi-provisioner",
      "csi-attacher",
      "csi-resizer",
      "liveness-probe",
    ]);
    expect(pod.volumes).toEqual([{ name: "socket-dir", emptyDir: {} }]);
    for (const c of pod.containers) {
      expect(c.volumeMounts, c.name).toContainEqual({ name: "socket-dir", mountPath: "/csi" });
      expect(c.securityContext?.privileged, c.name).toBeUndefined();
    }
    const driver = container(pod, "csi-controller");
    expect(driver.args?.[0]).toBe("csi-controller");
    expect(parseControllerFlags(driver.args!.slice(1))).toMatchObject({
      help: false,
      config: { endpoint: "unix:///csi/csi.sock", waitTimeoutMs: 60_000, metricsAddress: { port: 9401 } },
    });
    expect(container(pod, "csi-provisioner").args).toEqual(
      expect.arrayContaining([
        "--feature-gates=Topology=true",
        "--extra-create-metadata",
        "--leader-election",
      ]),
    );
    // Every sidecar outwaits the driver's own wait, so it hears the driver's retryable answer.
    for (const sidecar of ["csi-provisioner", "csi-attacher", "csi-resizer"]) {
      expect(container(pod, sidecar).args, sidecar).toContain("--timeout=90s");
    }
  });

  it.each([
    ["openzfs", false],
    ["zfs-fuse", true],
  ])(
    "runs the CSI node plugin privileged with Bidirectional kubelet mounts (%s backend)",
    async (backend, socket) => {
      const pod = podSpec(
        find(await render({ "csiNode.zfsBackend": backend }), "DaemonSet", "skein-csi-node"),
      );
      expect(pod.hostNetwork).toBe(true);
      const node = container(pod, "csi-node");
      expect(node.securityContext).toMatchObject({ privileged: true, runAsUser: 0 });
      expect(node.args?.[0]).toBe("csi-node");
      const argv = node.args!.slice(1).map((a) => a.replace("$(NODE_NAME)", "node-a"));
      expect(parseNodeFlags(argv, {})).toMatchObject({
        help: false,
        config: {
          nodeId: "node-a",
          pool: "tank",
          endpoint: "unix:///csi/csi.sock",
          resyncMs: 30_000,
          transfer: {
            listen: { host: "0.0.0.0", port: 7480 },
            peerPort: 7480,
            credentials: { namespace: expect.any(String) },
          },
        },
      });
      expect((node as { ports?: unknown[] }).ports).toContainEqual({
        name: "transfer",
        containerPort: 7480,
        protocol: "TCP",
      });
      expect(node.volumeMounts).toContainEqual({
        name: "kubelet-dir",
        mountPath: "/var/lib/kubelet",
        mountPropagation: "Bidirectional",
      });
      expect(node.volumeMounts).toContainEqual({ name: "dev", mountPath: "/dev" });
      expect(node.volumeMounts?.some((m) => m.mountPath === "/var/run/zfs")).toBe(socket);
      expect(container(pod, "node-driver-registrar").args).toContain(
        `--kubelet-registration-path=/var/lib/kubelet/plugins/${DRIVER}/csi.sock`,
      );
      expect(container(pod, "node-driver-registrar").securityContext?.privileged).toBeUndefined();
    },
  );

  it("passes the net-agent flags its own parser accepts, with the host paths it writes mounted", async () => {
    const rendered = await render({ "netAgent.underlayInterface": "eth1", "netAgent.portmap": false });
    const pod = podSpec(find(rendered, "DaemonSet", "skein-net-agent"));
    expect(pod.hostNetwork).toBe(true);
    const agent = container(pod, "net-agent");
    expect(agent.args?.[0]).toBe("net-agent");
    const argv = (agent.args ?? []).slice(1).map((a) => a.replace("$(NODE_NAME)", "node-a"));
    const config = parseAgentFlags(
      argv,
      {},
      {
        pluginSource: "/opt/skein/dist/skein-cni",
        dnsProgram: ["/opt/skein/dist/skein-dns"],
      },
    );
    expect(config).toMatchObject({
      node: "node-a",
      network: "skein",
      cniBinDir: "/opt/cni/bin",
      cniConfDir: "/etc/cni/net.d",
      underlayInterface: "eth1",
      portmap: false,
      metricsAddress: { host: "0.0.0.0", port: 9402 },
    });
    const mounted = (agent.volumeMounts ?? []).map((m) => m.mountPath).sort();
    expect(mounted).toEqual([
      "/etc/cni/net.d",
      "/opt/cni/bin",
      "/run/skein",
      "/run/xtables.lock",
      "/var/lib/cni",
    ]);
    expect(agent.securityContext).toMatchObject({ privileged: true });
  });

  it("gives every Skein container its node, namespace and log level", async () => {
    const rendered = await render({ logLevel: "debug" });
    for (const workload of rendered.filter((m) => m.kind === "Deployment" || m.kind === "DaemonSet")) {
      const skein = podSpec(workload).containers.filter((c) => c.image.startsWith("skein:"));
      expect(skein, workload.metadata.name).toHaveLength(1);
      const env = Object.fromEntries((skein[0]!.env ?? []).map((e) => [e.name, e.value ?? "(from the pod)"]));
      expect(env).toMatchObject({
        NODE_NAME: "(from the pod)",
        POD_NAMESPACE: "(from the pod)",
        SKEIN_LOG_LEVEL: "debug",
      });
    }
  });

  it("refuses a cluster older than the chart's kubeVersion", async () => {
    const failure = await helm(["template", "skein", CHART, "--kube-version", "1.29.0"]).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ExecError);
    expect((failure as ExecError).stderr).toMatch(/kubeVersion/);
  });
});

describe("RBAC as rendered", () => {
  let manifests: Manifest[];
  beforeAll(async () => {
    manifests = await render({}, ["--api-versions", "snapshot.storage.k8s.io/v1"]);
  });
  const roles = () => manifests.filter((m) => m.kind === "ClusterRole" || m.kind === "Role");

  it("uses no wildcards and none of escalate, bind or impersonate", () => {
    for (const role of roles()) {
      for (const rule of rulesOf(role)) {
        const where = `${role.kind}/${role.metadata.name}`;
        expect([...rule.apiGroups, ...rule.resources, ...rule.verbs], where).not.toContain("*");
        for (const verb of ["escalate", "bind", "impersonate"]) expect(rule.verbs, where).not.toContain(verb);
      }
    }
  });

  it("grants Secrets in no ClusterRole", () => {
    for (const role of manifests.filter((m) => m.kind === "ClusterRole")) {
      for (const rule of rulesOf(role)) {
        expect(rule.resources, role.metadata.name).not.toContain("secrets");
      }
    }
  });

  it("binds each component's roles to that component's ServiceAccount only", () => {
    const bindings = manifests.filter((m) => m.kind === "ClusterRoleBinding" || m.kind === "RoleBinding");
    expect(bindings.length).toBe(roles().length);
    for (const binding of bindings) {
      const roleRef = binding.roleRef as { kind: string; name: string };
      const subjects = binding.subjects as { kind: string; name: string; namespace: string }[];
      const component = binding.metadata.labels?.["app.kubernetes.io/component"];
      expect(roleRef.name.startsWith(`skein-${component}`), binding.metadata.name).toBe(true);
      expect(subjects).toEqual([
        { kind: "ServiceAccount", name: `skein-${component}`, namespace: NAMESPACE },
      ]);
      expect(roles().some((r) => r.kind === roleRef.kind && r.metadata.name === roleRef.name)).toBe(true);
    }
  });
});

describe("the chart's crds/", () => {
  it("is the top-level crds/, file for file and byte for byte (Helm installs this copy)", () => {
    const top = join(REPO, "crds");
    const copy = join(CHART, "crds");
    const yamlFiles = (dir: string) =>
      readdirSync(dir)
        .filter((f) => f.endsWith(".yaml"))
        .sort();
    expect(yamlFiles(copy), "run: cp crds/*.yaml charts/skein/crds/").toEqual(yamlFiles(top));
    for (const file of yamlFiles(top)) {
      const same = readFileSync(join(copy, file)).equals(readFileSync(join(top, file)));
      expect(
        same,
        `charts/skein/crds/${file} differs from crds/${file}; run: cp crds/*.yaml charts/skein/crds/`,
      ).toBe(true);
    }
  });

  it("carries the chart version that package.json has (the image tag defaults to it)", () => {
    const chart = readFileSync(join(CHART, "Chart.yaml"), "utf8");
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string };
    expect(chart).toContain(`appVersion: "${pkg.version}"`);
  });
});

// ---------------------------------------------------------------------------
// A real install. What each component must be able to do, and what it must
// not; the API server's own authorizer answers (SubjectAccessReview).

type Component = "operator" | "csi-controller" | "csi-node" | "net-agent";
/** [verb, "group:resource[/subresource]" ("resource" alone is the core group), where, object name]. */
type Access = [verb: string, resource: string, where: "cluster" | "release" | string, name?: string];

const ACCESS: Record<Component, { can: Access[]; cannot: Access[] }> = {
  operator: {
    can: [
      ["watch", "skein.io:networks", "cluster"],
      ["update", "skein.io:networks/status", "cluster"],
      ["create", "skein.io:nodesubnets", "cluster"],
      ["delete", "skein.io:nodesubnets", "cluster"],
      ["update", "skein.io:volumes", "cluster"],
      ["update", "skein.io:volumes/status", "cluster"],
      ["create", "skein.io:snapshots", "cluster"],
      ["create", "skein.io:volumemigrations", "cluster"],
      ["patch", "skein.io:volumemigrations/status", "cluster"],
      ["delete", "skein.io:storagepools", "cluster"],
      ["watch", "nodes", "cluster"],
      ["get", "coordination.k8s.io:leases", "release", "skein-operator"],
      ["create", "coordination.k8s.io:leases", "release"],
      ["update", "coordination.k8s.io:leases", "release", "skein-operator"],
      ["create", "secrets", "release"],
      ["update", "secrets", "release"],
      ["create", "events.k8s.io:events", "default"],
      ["patch", "events.k8s.io:events", "default"],
    ],
    cannot: [
      ["get", "secrets", "kube-system"],
      ["list", "secrets", "cluster"],
      ["update", "skein.io:networks", "cluster"],
      ["create", "skein.io:storagepools", "cluster"],
      ["create", "events.k8s.io:events", "kube-system"],
      ["update", "coordination.k8s.io:leases", "kube-system", "skein-operator"],
      ["update", "coordination.k8s.io:leases", "release", "another-lease"],
      ["delete", "nodes", "cluster"],
    ],
  },
  "csi-controller": {
    can: [
      ["create", "skein.io:volumes", "cluster"],
      ["delete", "skein.io:volumes", "cluster"],
      ["patch", "skein.io:volumes", "cluster"],
      ["create", "skein.io:snapshots", "cluster"],
      ["create", "skein.io:volumemigrations", "cluster"],
      ["delete", "skein.io:volumemigrations", "cluster"],
      ["list", "skein.io:storagepools", "cluster"],
      ["watch", "nodes", "cluster"],
      ["create", "persistentvolumes", "cluster"],
      ["update", "persistentvolumeclaims", "cluster"],
      ["patch", "persistentvolumeclaims/status", "cluster"],
      ["list", "storage.k8s.io:csinodes", "cluster"],
      ["patch", "storage.k8s.io:volumeattachments", "cluster"],
      ["patch", "storage.k8s.io:volumeattachments/status", "cluster"],
      ["update", "snapshot.storage.k8s.io:volumesnapshotcontents/status", "cluster"],
      ["create", "events", "cluster"],
      ["create", "coordination.k8s.io:leases", "release"],
    ],
    cannot: [
      ["get", "secrets", "release"],
      ["get", "secrets", "cluster"],
      ["update", "skein.io:volumes/status", "cluster"],
      ["delete", "skein.io:storagepools", "cluster"],
      ["delete", "persistentvolumeclaims", "cluster"],
      ["create", "coordination.k8s.io:leases", "kube-system"],
    ],
  },
  "csi-node": {
    can: [
      ["watch", "skein.io:volumes", "cluster"],
      ["patch", "skein.io:volumes", "cluster"],
      ["update", "skein.io:volumes/status", "cluster"],
      ["patch", "skein.io:snapshots", "cluster"],
      ["patch", "skein.io:snapshots/status", "cluster"],
      ["create", "skein.io:storagepools", "cluster"],
      ["patch", "skein.io:storagepools/status", "cluster"],
      ["watch", "skein.io:volumemigrations", "cluster"],
      ["patch", "skein.io:volumemigrations/status", "cluster"],
      ["get", "nodes", "cluster"],
      ["get", "secrets", "release"],
      ["watch", "secrets", "release"],
    ],
    cannot: [
      ["create", "skein.io:volumes", "cluster"],
      ["delete", "skein.io:volumes", "cluster"],
      ["delete", "skein.io:storagepools", "cluster"],
      ["create", "skein.io:volumemigrations", "cluster"],
      ["update", "skein.io:volumemigrations/status", "cluster"],
      ["get", "secrets", "kube-system"],
      ["list", "secrets", "cluster"],
      ["update", "secrets", "release"],
      ["patch", "nodes", "cluster"],
    ],
  },
  "net-agent": {
    can: [
      ["watch", "skein.io:networks", "cluster"],
      ["list", "skein.io:nodesubnets", "cluster"],
      ["watch", "nodes", "cluster"],
      ["list", "pods", "cluster"],
      ["watch", "pods", "cluster"],
      ["patch", "pods/status", "cluster"],
    ],
    cannot: [
      ["update", "skein.io:networks", "cluster"],
      ["create", "skein.io:nodesubnets", "cluster"],
      ["update", "skein.io:nodesubnets/status", "cluster"],
      ["patch", "pods", "cluster"],
      ["delete", "pods", "cluster"],
      ["get", "secrets", "release"],
    ],
  },
};

const describeAccess = ([verb, resource, where, name]: Access) =>
  `${verb} ${resource} ${where === "cluster" ? "cluster-wide" : `in ${where}`}${name ? ` named ${name}` : ""}`;

function accessReview(serviceAccount: string, namespace: string, [verb, resource, where, name]: Access) {
  const [group, path] = resource.includes(":") ? resource.split(":", 2) : ["", resource];
  const [plural, subresource] = path!.split("/", 2);
  return {
    spec: {
      user: `system:serviceaccount:${namespace}:${serviceAccount}`,
      groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"],
      resourceAttributes: {
        verb,
        group,
        resource: plural,
        ...(subresource ? { subresource } : {}),
        ...(name ? { name } : {}),
        ...(where === "cluster" ? {} : { namespace: where === "release" ? namespace : where }),
      },
    },
  };
}

async function readOrNull(objects: KubernetesObjectApi, m: Manifest): Promise<KubernetesObject | null> {
  try {
    return await objects.read({
      apiVersion: m.apiVersion,
      kind: m.kind,
      metadata: { name: m.metadata.name, namespace: m.metadata.namespace as string },
    });
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return null;
    throw err;
  }
}

/** Deletes whatever of `manifests` still exists; for cleanup after a failed test. */
async function deleteLeftovers(objects: KubernetesObjectApi, manifests: Manifest[]): Promise<void> {
  for (const m of manifests) {
    await objects
      .delete({
        apiVersion: m.apiVersion,
        kind: m.kind,
        metadata: { name: m.metadata.name, namespace: m.metadata.namespace as string },
      })
      .catch((err: unknown) => {
        if (!(err instanceof ApiException && err.code === 404)) throw err;
      });
  }
}

describe("helm install into the shared API server", () => {
  const release = `skein-t${randomBytes(3).toString("hex")}`;
  // The shared server is shared with every other suite: no default Network
  // (an operator under test elsewhere would see its CIDR), and a StorageClass
  // named after the release.
  const values = { "network.create": false, "storageClass.name": release };
  let kubeConfig: KubeConfig;
  let kubeconfigPath: string;
  let objects: KubernetesObjectApi;
  let namespace: { name: string; delete: () => Promise<void> } | undefined;
  let expected: Manifest[] = [];

  beforeAll(async () => {
    ({ kubeconfigPath } = sharedApiServer());
    kubeConfig = sharedApiServer().kubeConfig();
    objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    // CRDs first, as an upgrade does (kubectl apply -f crds/); Helm then skips its copy.
    await applyCrds(kubeConfig);
    namespace = await testNamespace(kubeConfig, "skein-chart");
    expected = await render(values, [], release, namespace.name);
  });

  afterAll(async () => {
    if (!namespace) return;
    try {
      await helm(["uninstall", release, "--namespace", namespace.name, "--ignore-not-found"], kubeconfigPath);
      await deleteLeftovers(objects, expected);
    } finally {
      await namespace.delete();
    }
  });

  it("installs, with the real API server's /version meeting kubeVersion", async () => {
    const sets = Object.entries(values).flatMap(([k, v]) => ["--set", `${k}=${v}`]);
    const ns = namespace!.name;
    await helm(["install", release, CHART, "--namespace", ns, "--wait=false", ...sets], kubeconfigPath);
    const { stdout } = await helm(["status", release, "--namespace", ns, "--output", "json"], kubeconfigPath);
    expect((JSON.parse(stdout) as { info: { status: string } }).info.status).toBe("deployed");
  });

  it("creates every rendered object, cluster-scoped ones included", async () => {
    const missing: string[] = [];
    for (const m of expected) {
      if ((await readOrNull(objects, m)) === null) missing.push(`${m.kind}/${m.metadata.name}`);
    }
    expect(missing).toEqual([]);
    expect(expected.map((m) => m.kind)).toEqual(
      expect.arrayContaining(["Deployment", "DaemonSet", "ClusterRole", "CSIDriver", "StorageClass"]),
    );
  });

  describe.each(Object.keys(ACCESS) as Component[])("RBAC of %s", (component) => {
    const review = async (access: Access) => {
      const api = kubeConfig.makeApiClient(AuthorizationV1Api);
      const answer = await api.createSubjectAccessReview({
        body: accessReview(`${release}-${component}`, namespace!.name, access),
      });
      return answer.status?.allowed === true;
    };
    it.each(ACCESS[component].can.map((a) => [describeAccess(a), a] as const))(
      "can %s",
      async (_, access) => {
        expect(await review(access)).toBe(true);
      },
    );
    it.each(ACCESS[component].cannot.map((a) => [describeAccess(a), a] as const))(
      "cannot %s",
      async (_, access) => {
        expect(await review(access)).toBe(false);
      },
    );
  });

  it("uninstalls every object it created, cluster-scoped ones included", async () => {
    await helm(["uninstall", release, "--namespace", namespace!.name, "--wait"], kubeconfigPath);
    const left: string[] = [];
    for (const m of expected) {
      if ((await readOrNull(objects, m)) !== null) left.push(`${m.kind}/${m.metadata.name}`);
    }
    expect(left).toEqual([]);
  });
});

describe("a first install into an empty cluster", () => {
  let server: ApiServer | undefined;
  let objects: KubernetesObjectApi;
  const network = { apiVersion: "skein.io/v1alpha1", kind: "Network", metadata: { name: "skein" } };
  beforeAll(async () => {
    server = await startApiServer();
    objects = KubernetesObjectApi.makeApiClient(server.kubeConfig());
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("installs the CRDs from the chart's crds/ before the default Network that needs them", async () => {
    await helm(
      ["install", "skein", CHART, "--namespace", NAMESPACE, "--create-namespace", "--wait=false"],
      server!.kubeconfigPath,
    );
    const created = (await objects.read(network)) as Manifest;
    expect(created.spec).toMatchObject({ cidr: "10.32.0.0/12", vni: 4242 });
  });

  it("lets the real operator, run with the chart's flags as its ServiceAccount, lead and allocate", async () => {
    // This cluster is the test's own, so the operator may act on everything in it.
    const kc = server!.kubeConfig();
    const { status } = await kc.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
      name: "skein-operator",
      namespace: NAMESPACE,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const kubeconfig = join(helmHome, "operator.kubeconfig");
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [
          { name: "c", cluster: { server: server!.url, "certificate-authority": server!.caCertPath } },
        ],
        users: [{ name: "operator", user: { token: status?.token } }],
        contexts: [{ name: "c", context: { cluster: "c", user: "operator" } }],
        "current-context": "c",
      }),
      { mode: 0o600 },
    );
    const pod = podSpec(find(await render(), "Deployment", "skein-operator"));
    const port = await freePort();
    const args = container(pod, "operator").args!.map((a) =>
      a
        .replace("$(POD_NAMESPACE)", NAMESPACE)
        .replace("$(POD_NAME)", "operator-under-test")
        .replace(/^--metrics-address=.*/, `--metrics-address=127.0.0.1:${port}`),
    );
    const operator = startProcess(
      "skein operator",
      [process.execPath, "--import", "tsx", join(REPO, "cmd/skein.ts"), ...args, "--kubeconfig", kubeconfig],
      join(helmHome, "operator.log"),
      { cwd: REPO, env: { ...process.env, KUBECONFIG: undefined } },
    );
    try {
      // Ready means every informer listed and watched: the ClusterRole covers what it reads.
      await waitUntilReady(operator, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 60_000);
      const lease = kc.makeApiClient(CoordinationV1Api);
      await eventually("the operator to hold the Lease", async () => {
        const held = await lease.readNamespacedLease({ name: "skein-operator", namespace: NAMESPACE });
        return held.spec?.holderIdentity === "operator-under-test";
      });
      await createNode(kc, "node-a", "198.18.0.10");
      const custom = kc.makeApiClient(CustomObjectsApi);
      await eventually(`a NodeSubnet for node-a (operator log: ${operator.logPath})`, async () => {
        const list = (await custom.listClusterCustomObject({
          group: "skein.io",
          version: "v1alpha1",
          plural: "nodesubnets",
        })) as { items: { spec: { node: string; network: string } }[] };
        return list.items.some((s) => s.spec.node === "node-a" && s.spec.network === "skein");
      });
      // Events about cluster-scoped objects land in "default", where its Role lets it write them.
      const events = kc.makeApiClient(EventsV1Api);
      await eventually("an Event about the Network from the operator", async () => {
        const list = await events.listNamespacedEvent({ namespace: "default" });
        return list.items.some(
          (e) => e.reportingController === "skein.io/operator" && e.regarding?.name === "skein",
        );
      });
      expect(readFileSync(operator.logPath, "utf8")).not.toMatch(/forbidden/i);
    } finally {
      await operator.stop();
    }
  });

  it("uninstalls the Network and keeps the CRDs (and with them the users' objects)", async () => {
    await helm(["uninstall", "skein", "--namespace", NAMESPACE, "--wait"], server!.kubeconfigPath);
    const crd = { apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition" };
    for (const name of ["volumes.skein.io", "networks.skein.io"]) {
      expect(await readOrNull(objects, { ...crd, metadata: { name } }), name).not.toBeNull();
    }
    expect(await readOrNull(objects, network)).toBeNull();
  });
});

// ---------------------------------------------------------------------------
// The Dockerfile cannot be built here (no Docker daemon); these check what can
// be checked without one.

/** The sources of every `COPY` from the build context (not `--from=` a stage). */
function contextCopies(dockerfile: string): string[] {
  const sources: string[] = [];
  for (const line of dockerfile.split("\n")) {
    const words = line.trim().split(/\s+/);
    if (words[0]?.toUpperCase() !== "COPY") continue;
    const args = words.slice(1);
    if (args.some((a) => a.startsWith("--from"))) continue;
    const paths = args.filter((a) => !a.startsWith("--"));
    sources.push(...paths.slice(0, -1).map((p) => p.replace(/\/$/, "")));
  }
  return sources;
}

/** A .dockerignore pattern as a regular expression over context-relative paths. */
function ignorePattern(pattern: string): RegExp {
  if (pattern.startsWith("!"))
    throw new Error(`exceptions (${pattern}) are not handled by this check; extend it`);
  const body = pattern
    .replace(/^\/+|\/+$/g, "")
    .split("**/")
    .map((part) =>
      part
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .replace(/\*/g, "[^/]*")
        .replace(/\?/g, "[^/]"),
    )
    .join("(?:.*/)?");
  return new RegExp(`^${body}$`);
}

/** Whether Docker leaves `path` out of the context: a pattern matches it or a folder above it. */
function ignored(path: string, patterns: RegExp[]): boolean {
  const parts = path.split("/");
  return parts.some((_, i) => patterns.some((p) => p.test(parts.slice(0, i + 1).join("/"))));
}

describe("Dockerfile", () => {
  const dockerfile = readFileSync(join(REPO, "Dockerfile"), "utf8");
  const patterns = readFileSync(join(REPO, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map(ignorePattern);

  it("builds on Node 20 and runs Node 20", () => {
    expect(dockerfile).toMatch(/^ARG NODE_VERSION=20$/m);
    expect(dockerfile).toMatch(/^FROM node:\$\{NODE_VERSION\}-bookworm AS build$/m);
    expect(dockerfile).toMatch(/^FROM node:\$\{NODE_VERSION\}-bookworm-slim AS runtime$/m);
  });

  it("copies from the context only paths that exist and that .dockerignore keeps", () => {
    const sources = contextCopies(dockerfile);
    expect(sources).toEqual(
      expect.arrayContaining(["package.json", "package-lock.json", "cmd", "cni", "csi"]),
    );
    for (const source of sources) {
      expect(() => statSync(join(REPO, source)), `${source} is copied but does not exist`).not.toThrow();
      expect(ignored(source, patterns), `${source} is copied but .dockerignore leaves it out`).toBe(false);
    }
  });

  it("copies every source file the two bundles are built from", async () => {
    const sources = contextCopies(dockerfile);
    const result = await build({
      entryPoints: [join(REPO, "cmd/skein.ts"), join(REPO, "cni/plugin/main.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      write: false,
      metafile: true,
      outdir: join(helmHome, "bundle"),
      absWorkingDir: REPO,
      logLevel: "silent",
      // The plugin is compiled by Bun, whose own modules are built in.
      external: ["bun:*"],
    });
    // Input paths are relative to absWorkingDir, the repository.
    const inputs = Object.keys(result.metafile.inputs).filter((p) => !p.startsWith("node_modules/"));
    expect(inputs.length).toBeGreaterThan(10);
    const uncopied = inputs.filter(
      (p) => !sources.some((s) => p === s || p.startsWith(`${s}/`)) || ignored(p, patterns),
    );
    expect(uncopied, "the image build would miss these").toEqual([]);
  });

  it("runs the image as an unprivileged user by default", () => {
    expect(dockerfile).toMatch(/^USER 65532:65532$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "\/opt\/skein\/dist\/skein\.mjs"\]$/m);
  });

  it.each([
    ["node_modules/x/index.js", true],
    ["cni/plugin/plugin.test.ts", true],
    ["cni/plugin/testdata/a.json", true],
    ["cni/plugin/main.ts", false],
    ["dist/skein.mjs", true],
  ])("the .dockerignore check reads %s as ignored=%s", (path, expected) => {
    expect(ignored(path, patterns)).toBe(expected);
  });
});
