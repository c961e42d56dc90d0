import { ApiextensionsV1Api, CustomObjectsApi, type KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { type Condition, setCondition } from "./conditions.ts";
import { customStatusAccess, StatusConflictError, updateStatus } from "./status.ts";
import { eventually, testNamespace } from "./testing.ts";

interface Widget extends KubernetesObject {
  spec?: { size?: number };
  status?: { observedGeneration?: number; conditions?: Condition[]; notes?: string[] };
}

const resource = { group: "kit-test.skein.io", version: "v1", plural: "widgets" };
const crdName = `${resource.plural}.${resource.group}`;

describe("updateStatus against a custom resource", () => {
  const kc = sharedApiServer().kubeConfig();
  const crds = kc.makeApiClient(ApiextensionsV1Api);
  const objects = kc.makeApiClient(CustomObjectsApi);
  let ns: Awaited<ReturnType<typeof testNamespace>>;

  beforeAll(async () => {
    await crds
      .createCustomResourceDefinition({
        body: {
          metadata: { name: crdName },
          spec: {
            group: resource.group,
            names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
            scope: "Namespaced",
            versions: [
              {
                name: "v1",
                served: true,
                storage: true,
                subresources: { status: {} },
                schema: {
                  openAPIV3Schema: {
                    type: "object",
                    properties: {
                      spec: { type: "object", properties: { size: { type: "integer" } } },
                      // client-node's model spells the extension x_kubernetes_preserve_unknown_fields.
                      status: { type: "object", x_kubernetes_preserve_unknown_fields: true },
                    },
                  },
                },
              },
            ],
          },
        },
      })
      .catch((err: { code?: number }) => {
        if (err.code !== 409) throw err;
      });
    await eventually("the CRD to be established", async () => {
      const crd = await crds.readCustomResourceDefinition({ name: crdName });
      return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    });
    ns = await testNamespace(kc, "kit-status");
  });
  afterAll(async () => {
    await ns?.delete();
    await crds.deleteCustomResourceDefinition({ name: crdName }).catch(() => undefined);
  });

  async function createWidget(name: string): Promise<Widget> {
    return objects.createNamespacedCustomObject({
      ...resource,
      namespace: ns.name,
      body: { apiVersion: `${resource.group}/v1`, kind: "Widget", metadata: { name }, spec: { size: 1 } },
    });
  }

  it("writes status through the subresource, leaving spec alone", async () => {
    const w = await createWidget("plain");
    const access = customStatusAccess<Widget>(kc, resource, "plain", ns.name);
    const written = await updateStatus(access, (d) => {
      d.status = { observedGeneration: d.metadata?.generation, notes: ["hello"] };
      d.spec = { size: 99 };
      return true;
    });
    expect(written.status).toEqual({ observedGeneration: 1, notes: ["hello"] });
    expect(written.spec).toEqual({ size: 1 });
    expect(Number(written.metadata?.resourceVersion)).toBeGreaterThan(Number(w.metadata?.resourceVersion));
  });

  it("re-reads and recomputes after a conflict, so a concurrent write is not lost", async () => {
    const stale = await createWidget("contended");
    const access = customStatusAccess<Widget>(kc, resource, "contended", ns.name);
    // Someone else adds a note after we took our copy.
    await updateStatus(access, (d) => {
      d.status = { notes: ["theirs"] };
      return true;
    });
    let calls = 0;
    const result = await updateStatus(
      access,
      (d) => {
        calls++;
        d.status = { ...d.status, notes: [...(d.status?.notes ?? []), "ours"] };
        return true;
      },
      { current: stale },
    );
    expect(calls).toBe(2);
    expect(result.status?.notes).toEqual(["theirs", "ours"]);
  });

  it("makes no request when nothing changes", async () => {
    await createWidget("steady");
    const access = customStatusAccess<Widget>(kc, resource, "steady", ns.name);
    const now = new Date();
    const first = await updateStatus(access, (d) => {
      const next = setCondition(
        d.status?.conditions,
        { type: "Ready", status: "True", reason: "Ok", message: "" },
        now,
      );
      if (next === d.status?.conditions) return false;
      d.status = { ...d.status, conditions: [...next] };
      return true;
    });
    const second = await updateStatus(
      { read: access.read, replaceStatus: () => Promise.reject(new Error("must not write")) },
      (d) =>
        setCondition(
          d.status?.conditions,
          { type: "Ready", status: "True", reason: "Ok", message: "" },
          now,
        ) !== d.status?.conditions,
      { current: first },
    );
    expect(second).toBe(first);
  });

  it("gives up with a clear error after repeated conflicts", async () => {
    await createWidget("hot");
    const real = customStatusAccess<Widget>(kc, resource, "hot", ns.name);
    const conflict = Object.assign(new Error("Conflict"), { code: 409 });
    const access = { read: real.read, replaceStatus: () => Promise.reject(conflict) };
    const attempt = updateStatus(access, () => true, { attempts: 3 });
    await expect(attempt).rejects.toThrow(StatusConflictError);
    await expect(attempt).rejects.toThrow(/3 conflicting writes/);
  });

  it("passes other errors through", async () => {
    const access = customStatusAccess<Widget>(kc, resource, "missing", ns.name);
    await expect(updateStatus(access, () => true)).rejects.toMatchObject({ code: 404 });
  });
});
