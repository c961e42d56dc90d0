/**
 * A gRPC server for CSI services on a unix socket. Handlers are plain async
 * functions (request → reply); this module adapts them to grpc-js, turns
 * thrown errors into status codes (status.ts), answers UNIMPLEMENTED for
 * methods a service leaves out, logs each call without its secrets, and shuts
 * down gracefully.
 *
 * A socket file left by a crashed predecessor is removed at start; a socket
 * that still has a listener, or a path that is not a socket, is left alone and
 * start fails, so two plugins never steal each other's endpoint.
 */
import { mkdirSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { dirname } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { InvalidInputError } from "../../kit/errors.ts";
import { createLogger, type Logger } from "../../kit/log.ts";
import type { CsiMethods, Handler, ServiceImplementation } from "../proto/types.ts";
import { type CsiServiceName, serviceDefinition } from "./load.ts";
import { CsiError, grpcCodeNameOf, toGrpcStatus } from "./status.ts";

export type CsiServiceImplementations = {
  [S in CsiServiceName]?: Partial<ServiceImplementation<CsiMethods[S]>>;
};

export interface CsiServerOptions {
  /** `unix:///path/to/csi.sock` or `/path/to/csi.sock`. */
  endpoint: string;
  services: CsiServiceImplementations;
  logger?: Logger;
}

/** The socket path of a CSI endpoint; only unix sockets are served. */
export function socketPathOf(endpoint: string): string {
  const path = endpoint.startsWith("unix://") ? endpoint.slice("unix://".length) : endpoint;
  if (!path.startsWith("/")) {
    throw new InvalidInputError(
      `CSI endpoint ${JSON.stringify(endpoint)} must be a unix socket: unix:///absolute/path or /absolute/path`,
    );
  }
  return path;
}

function listening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function clearStaleSocket(path: string): Promise<void> {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket())
    throw new InvalidInputError(`${path} exists and is not a socket; refusing to replace it`);
  if (await listening(path)) throw new InvalidInputError(`another server already listens on ${path}`);
  rmSync(path, { force: true });
}

/** The request as it may be logged: every `secrets` map dropped. */
function loggable(request: unknown): unknown {
  if (request === null || typeof request !== "object") return request;
  const { secrets: _secrets, ...rest } = request as Record<string, unknown>;
  return rest;
}

function adapt(
  service: CsiServiceName,
  method: string,
  handler: Handler<unknown, unknown> | undefined,
  log: Logger,
): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const started = Date.now();
    const abort = new AbortController();
    call.on("cancelled", () => abort.abort(new CsiError("CANCELLED", "the client cancelled the call")));
    const run = handler
      ? Promise.resolve().then(() => handler(call.request, { signal: abort.signal }))
      : Promise.reject(
          new CsiError("UNIMPLEMENTED", `csi.v1.${service}/${method} is not implemented by Skein`),
        );
    run.then(
      (reply) => {
        log.debug({ method, ms: Date.now() - started }, "call succeeded");
        callback(null, reply ?? {});
      },
      (err: unknown) => {
        const code = grpcCodeNameOf(err);
        const line = { method, code, ms: Date.now() - started, request: loggable(call.request), err };
        if (code === "INTERNAL") log.error(line, "call failed");
        else log.info(line, "call refused");
        callback(toGrpcStatus(err));
      },
    );
  };
}

export class CsiServer {
  private constructor(
    private readonly server: grpc.Server,
    readonly socketPath: string,
    private readonly log: Logger,
  ) {}

  /** Binds `options.endpoint` and serves the given services. */
  static async start(options: CsiServerOptions): Promise<CsiServer> {
    const log = options.logger ?? createLogger("csi-grpc");
    const socketPath = socketPathOf(options.endpoint);
    mkdirSync(dirname(socketPath), { recursive: true });
    await clearStaleSocket(socketPath);

    const server = new grpc.Server();
    for (const [name, implementation] of Object.entries(options.services) as [
      CsiServiceName,
      Record<string, Handler<unknown, unknown>>,
    ][]) {
      const definition = serviceDefinition(name);
      const handlers: grpc.UntypedServiceImplementation = {};
      for (const method of Object.keys(definition)) {
        handlers[method] = adapt(name, method, implementation[method], log.child({ service: name }));
      }
      server.addService(definition, handlers);
    }
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    log.info({ socket: socketPath, services: Object.keys(options.services) }, "serving CSI");
    return new CsiServer(server, socketPath, log);
  }

  /**
   * Stops accepting calls, lets running ones finish for up to `graceMs`, then
   * cancels the rest, and removes the socket.
   */
  async stop(graceMs = 10_000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn({ graceMs }, "calls still running after the grace period; cancelling them");
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    rmSync(this.socketPath, { force: true });
    this.log.info({ socket: this.socketPath }, "stopped serving CSI");
  }
}
