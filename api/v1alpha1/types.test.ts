import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import {
  ApiTypesError,
  type CrdDocument,
  formatTypeScript,
  generateApiTypes,
  loadCrds,
  type OpenApiSchema,
  renderApiTypes,
  TYPES_FILE,
} from "../../scripts/gen-api-types.ts";
import { API_VERSION, GROUP, KINDS, VERSION } from "./index.ts";

describe("types.generated.ts", () => {
  it("matches what the CRDs generate (run `npm run gen:api` after changing a CRD)", async () => {
    const committed = await readFile(TYPES_FILE, "utf8");
    expect(committed).toBe(await generateApiTypes());
  });
});

describe("the CRDs in crds/", () => {
  it("name exactly the kinds and plurals index.ts exports, in group skein.io, version v1alpha1", async () => {
    const crds = await loadCrds();
    const names = crds.map(({ crd }) => crd.spec.names).sort((a, b) => a.kind.localeCompare(b.kind));
    const exported = Object.values(KINDS)
      .map(({ kind, plural }) => ({ kind, plural }))
      .sort((a, b) => a.kind.localeCompare(b.kind));
    expect(names.map(({ kind, plural }) => ({ kind, plural }))).toEqual(exported);
    expect(API_VERSION).toBe("skein.io/v1alpha1");
    for (const { file, crd } of crds) {
      const spec = crd.spec as CrdDocument["spec"] & { group: string; scope: string };
      expect(spec.group, file).toBe(GROUP);
      expect(spec.scope, file).toBe("Cluster");
      expect(
        spec.versions.map((v) => v.name),
        file,
      ).toEqual([VERSION]);
      expect(file).toBe(`${GROUP}_${crd.spec.names.plural}.yaml`);
    }
  });

  it("describe every field (but metadata, whose schema the API server fixes)", async () => {
    const undocumented: string[] = [];
    const walk = (schema: OpenApiSchema, where: string) => {
      if (!schema.description && !where.endsWith(".metadata")) undocumented.push(where);
      for (const [field, child] of Object.entries(schema.properties ?? {})) walk(child, `${where}.${field}`);
      if (schema.items) walk(schema.items, `${where}[]`);
    };
    for (const { file, crd } of await loadCrds()) {
      const root = crd.spec.versions[0]?.schema?.openAPIV3Schema;
      expect(root, file).toBeDefined();
      walk(root!, file);
    }
    expect(undocumented).toEqual([]);
  });
});

describe("renderApiTypes", () => {
  const condition: OpenApiSchema = {
    type: "object",
    required: ["type", "status", "lastTransitionTime"],
    properties: {
      type: { type: "string" },
      status: { type: "string", enum: ["True", "False", "Unknown"] },
      lastTransitionTime: { type: "string", format: "date-time" },
    },
  };
  const conditions = (item: OpenApiSchema): OpenApiSchema => ({
    type: "array",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    items: item,
  });
  const crd = (kind: string, spec: OpenApiSchema, status: OpenApiSchema) => ({
    file: `${kind}.yaml`,
    crd: {
      kind: "CustomResourceDefinition",
      spec: {
        names: { kind, plural: `${kind.toLowerCase()}s` },
        versions: [
          {
            name: "v1alpha1",
            schema: { openAPIV3Schema: { type: "object", properties: { spec, status } } },
          },
        ],
      },
    } satisfies CrdDocument,
  });

  it("names nested objects after the kind and the field, list elements in the singular", async () => {
    const out = await formatTypeScript(
      await renderApiTypes([
        crd(
          "Thing",
          {
            type: "object",
            required: ["size"],
            properties: {
              size: { type: "integer", description: "How big.", default: 3 },
              source: { type: "object", properties: { from: { type: "string" } } },
              labels: { type: "object", additionalProperties: { type: "string" } },
            },
          },
          {
            type: "object",
            properties: {
              copies: { type: "array", items: { type: "object", properties: { node: { type: "string" } } } },
              conditions: conditions(condition),
            },
          },
        ),
      ]),
    );
    expect(out).toContain("export interface ThingSpec {");
    expect(out).toMatch(/How big\.\s+\*\s+\*\s+@default 3\s+\*\/\s+size: number;/);
    expect(out).toContain("source?: ThingSource;");
    expect(out).toContain("export interface ThingSource {");
    expect(out).toMatch(/labels\?: \{\s+\[k: string\]: string;\s+\};/);
    expect(out).toContain("copies?: ThingCopy[];");
    expect(out).toContain("conditions?: Condition[];");
    expect(out.match(/export interface Condition \{/g)).toHaveLength(1);
    expect(out).toContain('status: "True" | "False" | "Unknown";');
  });

  it("refuses CRDs whose condition schemas differ, naming both places", async () => {
    const drifted = { ...condition, required: ["type", "status"] };
    const err = await renderApiTypes([
      crd("A", { type: "object" }, { type: "object", properties: { conditions: conditions(condition) } }),
      crd("B", { type: "object" }, { type: "object", properties: { conditions: conditions(drifted) } }),
    ]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiTypesError);
    expect((err as Error).message).toMatch(
      /B\.yaml: status\.conditions differs from .*A\.yaml: status\.conditions/,
    );
  });

  it("refuses two fields that would generate the same type name", async () => {
    const obj = { type: "object", properties: { x: { type: "string" } } };
    const err = await renderApiTypes([
      crd(
        "A",
        { type: "object", properties: { info: obj } },
        { type: "object", properties: { info: obj, conditions: conditions(condition) } },
      ),
    ]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiTypesError);
    expect((err as Error).message).toContain("AInfo");
  });
});
