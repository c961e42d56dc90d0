/**
 * Loads csi/proto/csi.proto into the service definitions @grpc/grpc-js serves
 * and calls. Decoding options (one set for servers and clients, so tests see
 * what the driver sees):
 * - keepCase: fields keep the spec's snake_case names;
 * - longs: Number. int64 fields are byte counts; a Number is exact up to 8 PiB,
 *   beyond any pool, and larger requests are refused anyway for lack of space;
 * - enums: String, so code reads `"SINGLE_NODE_WRITER"`, not 1;
 * - defaults: absent scalars, lists and maps decode to their defaults;
 * - oneofs: a oneof's chosen field is named by a virtual field.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadSync, type PackageDefinition } from "@grpc/proto-loader";
import type { CsiMethods, Reply } from "../proto/types.ts";

export const LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

export type CsiServiceName = keyof CsiMethods;

/**
 * csi.proto beside the sources (csi/proto/), or beside the bundle (dist/, where
 * the build copies it).
 */
export function protoPath(): string {
  const candidates = [new URL("../proto/csi.proto", import.meta.url), new URL("csi.proto", import.meta.url)];
  const found = candidates.map((u) => fileURLToPath(u)).find((p) => existsSync(p));
  if (!found)
    throw new Error(`csi.proto not found; looked in ${candidates.map((u) => fileURLToPath(u)).join(", ")}`);
  return found;
}

let loaded: PackageDefinition | undefined;

function csiPackage(): PackageDefinition {
  loaded ??= loadSync(protoPath(), LOADER_OPTIONS);
  return loaded;
}

/** The grpc-js definition of one csi.v1 service. */
export function serviceDefinition(name: CsiServiceName): grpc.ServiceDefinition {
  const definition = csiPackage()[`csi.v1.${name}`];
  // Message types carry a `format` field; services are maps of methods.
  if (!definition || "format" in definition) throw new Error(`csi.v1.${name} is not a service`);
  return definition as grpc.ServiceDefinition;
}

type Method<S extends CsiServiceName> = keyof CsiMethods[S] & string;
type RequestOf<S extends CsiServiceName, M extends Method<S>> = CsiMethods[S][M] extends [infer Req, unknown]
  ? Req
  : never;
type ResponseOf<S extends CsiServiceName, M extends Method<S>> = CsiMethods[S][M] extends [unknown, infer Res]
  ? Res
  : never;

/** A promise-based client of one CSI service, for tests and tools. */
export class CsiClient<S extends CsiServiceName> {
  private readonly client: grpc.Client;

  /** `address` as grpc-js takes it, e.g. `unix:///run/csi/csi.sock`. */
  constructor(
    readonly service: S,
    address: string,
  ) {
    const Client = grpc.makeClientConstructor(serviceDefinition(service), service);
    this.client = new Client(address, grpc.credentials.createInsecure());
  }

  call<M extends Method<S>>(
    method: M,
    request: Reply<RequestOf<S, M>>,
    options: { deadlineMs?: number } = {},
  ): Promise<ResponseOf<S, M>> {
    const fn = (this.client as unknown as Record<string, grpc.requestCallback<unknown> | undefined>)[method];
    if (typeof fn !== "function") throw new Error(`csi.v1.${this.service} has no method ${method}`);
    const deadline = Date.now() + (options.deadlineMs ?? 30_000);
    return new Promise((resolve, reject) => {
      (fn as (...args: unknown[]) => void).call(
        this.client,
        request,
        new grpc.Metadata(),
        { deadline },
        (err: grpc.ServiceError | null, response: unknown) =>
          err ? reject(err) : resolve(response as ResponseOf<S, M>),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
