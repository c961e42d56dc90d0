import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { KubeconfigError, loadKubeConfig } from "./kubeconfig.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "skein-kubeconfig-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(name: string, server: string, path = join(dir, name)): string {
  const context = name;
  writeFileSync(
    path,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name, cluster: { server } }],
      users: [{ name, user: { token: "t" } }],
      contexts: [{ name: context, context: { cluster: name, user: name } }],
      "current-context": context,
    }),
  );
  return path;
}

const noHome = () => join(dir, "no-home");

describe("loadKubeConfig", () => {
  it("prefers the --kubeconfig path over $KUBECONFIG", () => {
    const flag = writeConfig("flag", "https://10.0.0.1:6443");
    const envFile = writeConfig("env", "https://10.0.0.2:6443");
    const { kubeConfig, source } = loadKubeConfig({
      path: flag,
      env: { KUBECONFIG: envFile },
      home: noHome(),
    });
    expect(source).toBe("flag");
    expect(kubeConfig.getCurrentCluster()?.server).toBe("https://10.0.0.1:6443");
  });

  it("merges a $KUBECONFIG path list, keeping the first file's context", () => {
    const a = writeConfig("a", "https://10.0.0.1:6443");
    const b = writeConfig("b", "https://10.0.0.2:6443");
    const { kubeConfig, source } = loadKubeConfig({ env: { KUBECONFIG: `${a}:${b}` }, home: noHome() });
    expect(source).toBe("KUBECONFIG");
    expect(kubeConfig.getCurrentCluster()?.server).toBe("https://10.0.0.1:6443");
    expect(kubeConfig.getClusters().map((c) => c.name)).toEqual(["a", "b"]);
  });

  it("uses the pod's service account when in a cluster", () => {
    const sa = join(dir, "pod", "var/run/secrets/kubernetes.io/serviceaccount");
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, "token"), "tok");
    writeFileSync(join(sa, "namespace"), "skein-system");
    const { kubeConfig, source } = loadKubeConfig({
      env: { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" },
      inClusterRoot: join(dir, "pod"),
      home: noHome(),
    });
    expect(source).toBe("in-cluster");
    expect(kubeConfig.getCurrentCluster()?.server).toBe("https://10.96.0.1:443");
    expect(kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace).toBe("skein-system");
    expect(process.env.KUBERNETES_SERVICE_HOST).toBeUndefined();
  });

  it("falls back to ~/.kube/config", () => {
    mkdirSync(join(dir, "home", ".kube"), { recursive: true });
    writeConfig("home", "https://10.0.0.9:6443", join(dir, "home", ".kube", "config"));
    const { source, kubeConfig } = loadKubeConfig({ env: {}, home: join(dir, "home") });
    expect(source).toBe("home");
    expect(kubeConfig.getCurrentCluster()?.server).toBe("https://10.0.0.9:6443");
  });

  it("says what it tried when nothing works", () => {
    const attempt = () => loadKubeConfig({ env: {}, home: noHome(), inClusterRoot: dir });
    expect(attempt).toThrow(KubeconfigError);
    expect(attempt).toThrow(
      /no --kubeconfig flag, \$KUBECONFIG is unset, not running in a pod.*pass --kubeconfig/,
    );
  });

  it("points at a missing service-account token inside a pod", () => {
    const attempt = () =>
      loadKubeConfig({
        env: { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" },
        inClusterRoot: dir,
        home: noHome(),
      });
    expect(attempt).toThrow(/automountServiceAccountToken/);
  });

  it("names the file that cannot be loaded", () => {
    const missing = join(dir, "missing.yaml");
    expect(() => loadKubeConfig({ path: missing })).toThrow(
      `cannot load the kubeconfig ${missing} (from --kubeconfig)`,
    );
  });

  it("rejects a kubeconfig without a usable current context", () => {
    const path = writeConfig("odd", "https://10.0.0.1:6443");
    writeFileSync(
      path,
      stringify({ apiVersion: "v1", kind: "Config", clusters: [], users: [], contexts: [] }),
    );
    expect(() => loadKubeConfig({ path })).toThrow(/no current context naming a cluster/);
  });
});
