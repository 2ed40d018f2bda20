// gRPC control plane on @grpc/grpc-js with protobuf-es messages: services are registered from the
// generated descriptors (toBinary/fromBinary as serializers), no proto-loader, no second codegen.
// Every server also serves grpc.health.v1.Health, driven by a HealthGate (Check and Watch).
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type DescService, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@wirescope/wire/gen/grpc/health/v1/health_pb";
import { hostPort } from "@wirescope/wire/identity";
import { ConfigError, GrpcError, WirescopeError, errorMessage } from "./errors.js";
import type { HealthGate } from "./health.js";
import type { Logger } from "./log.js";

export { ServingStatus };

type Methods<S> = S extends GenService<infer R> ? R : GenServiceMethods;
type In<M> = M extends { input: infer I extends DescMessage } ? I : never;
type Out<M> = M extends { output: infer O extends DescMessage } ? O : never;

/** What a server-streaming handler gets besides the request. */
export interface StreamCall<O extends DescMessage> {
  write(message: MessageInitShape<O>): void;
  /** Aborted when the client cancels or the server stops. */
  signal: AbortSignal;
}

/** Handlers for a service, keyed by protobuf-es local name (e.g. `status`). Missing = UNIMPLEMENTED. */
export type ServiceImpl<S> = {
  [K in keyof Methods<S>]?: Methods<S>[K]["methodKind"] extends "server_streaming"
    ? (request: MessageShape<In<Methods<S>[K]>>, call: StreamCall<Out<Methods<S>[K]>>) => Promise<void>
    : (request: MessageShape<In<Methods<S>[K]>>) => Promise<MessageInitShape<Out<Methods<S>[K]>>> | MessageInitShape<Out<Methods<S>[K]>>;
};

/** The grpc-js definition of one method, serialized with protobuf-es. */
export function methodDefinition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (m: unknown) => Buffer.from(toBinary(method.input, m as MessageShape<DescMessage>)),
    requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
    responseSerialize: (m: unknown) => Buffer.from(toBinary(method.output, m as MessageShape<DescMessage>)),
    responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
    originalName: method.localName,
  };
}

/** The grpc-js service definition of a protobuf-es service descriptor. */
export function serviceDefinition(desc: DescService): grpc.ServiceDefinition {
  return Object.fromEntries(desc.methods.map((m) => [m.localName, methodDefinition(m)]));
}

function toServiceError(e: unknown): Partial<grpc.StatusObject> {
  if (e && typeof e === "object" && "code" in e && typeof (e as grpc.StatusObject).code === "number") return e as grpc.StatusObject;
  const code = e instanceof ConfigError ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL;
  return { code, details: errorMessage(e) };
}

export interface GrpcServerOptions {
  log: Logger;
  /** Drives grpc.health.v1.Health for "" and every registered service. */
  health: HealthGate;
}

/** A gRPC server with Health built in. Register services, then listen. */
export class GrpcServer {
  private readonly server = new grpc.Server();
  private readonly names = new Set<string>([""]);
  private readonly watchers = new Set<{ service: string; call: grpc.ServerWritableStream<unknown, unknown> }>();
  private address_: string | undefined;
  private readonly stopController = new AbortController();

  constructor(private readonly opts: GrpcServerOptions) {
    this.addService(Health, {
      check: (req) => {
        if (!this.names.has(req.service)) throw { code: grpc.status.NOT_FOUND, details: `unknown service "${req.service}"` };
        return { status: this.status() };
      },
      watch: async (req, call) => {
        // Current status first, then every change, until the client or the server goes away.
        const current = () => (this.names.has(req.service) ? this.status() : ServingStatus.SERVICE_UNKNOWN);
        let last = current();
        call.write({ status: last });
        await new Promise<void>((resolve) => {
          const off = opts.health.onChange(() => {
            const now = current();
            if (now !== last) {
              last = now;
              call.write({ status: now });
            }
          });
          call.signal.addEventListener("abort", () => {
            off();
            resolve();
          }, { once: true });
        });
      },
    });
  }

  private status(): ServingStatus {
    return this.opts.health.serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }

  /** Registers `desc` with `impl`; methods missing from `impl` answer UNIMPLEMENTED. */
  addService<S extends DescService>(desc: S, impl: ServiceImpl<S>): this {
    const handlers: grpc.UntypedServiceImplementation = {};
    const log = this.opts.log;
    for (const method of desc.methods) {
      const fn = (impl as Record<string, ((...a: unknown[]) => unknown) | undefined>)[method.localName];
      if (method.methodKind === "unary") {
        handlers[method.localName] = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          if (!fn) return cb({ code: grpc.status.UNIMPLEMENTED, details: `${method.parent.typeName}.${method.name} is not implemented` });
          Promise.resolve()
            .then(() => fn(call.request))
            .then(
              (res) => cb(null, create(method.output, res as MessageInitShape<DescMessage>)),
              (e: unknown) => {
                log.debug({ method: method.name, reason: errorMessage(e) }, "gRPC handler failed");
                cb(toServiceError(e));
              },
            );
        };
      } else if (method.methodKind === "server_streaming") {
        handlers[method.localName] = (call: grpc.ServerWritableStream<unknown, unknown>) => {
          if (!fn) return call.destroy(Object.assign(new Error("unimplemented"), { code: grpc.status.UNIMPLEMENTED }));
          const ac = new AbortController();
          const abort = () => ac.abort();
          call.on("cancelled", abort);
          call.on("close", abort);
          this.stopController.signal.addEventListener("abort", abort, { once: true });
          const entry = { service: method.parent.typeName, call };
          this.watchers.add(entry);
          const write = (m: unknown) => {
            if (!ac.signal.aborted) call.write(create(method.output, m as MessageInitShape<DescMessage>));
          };
          Promise.resolve()
            .then(() => fn(call.request, { write, signal: ac.signal }))
            .then(
              () => call.end(),
              (e: unknown) => call.destroy(Object.assign(new Error(errorMessage(e)), toServiceError(e))),
            )
            .finally(() => {
              this.watchers.delete(entry);
              this.stopController.signal.removeEventListener("abort", abort);
            });
        };
      } else {
        throw new GrpcError("unsupported", `${method.parent.typeName}.${method.name}: ${method.methodKind} methods are not supported`);
      }
    }
    this.server.addService(serviceDefinition(desc), handlers);
    if (desc.typeName !== Health.typeName) this.names.add(desc.typeName);
    return this;
  }

  /**
   * Binds host:port (0 = ephemeral) without TLS; control ports are meant for loopback or a pod network.
   * @throws GrpcError("bind") with the address when the port is taken or the host is wrong.
   */
  async listen(host: string, port: number): Promise<{ host: string; port: number; address: string }> {
    const target = hostPort(host, port);
    const bound = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err, p) => {
        if (err) reject(new GrpcError("bind", `cannot listen for gRPC on ${target}: ${errorMessage(err)}`, { cause: err }));
        else resolve(p);
      });
    });
    this.address_ = hostPort(host, bound);
    return { host, port: bound, address: this.address_ };
  }

  get address(): string | undefined {
    return this.address_;
  }

  /** Ends open streams (Watch), lets in-flight calls finish for up to `graceMs`, then forces. */
  async stop(graceMs = 2000): Promise<void> {
    this.stopController.abort();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

export interface CallOptions {
  /** Deadline for a unary call (default 5 s). */
  timeoutMs?: number;
  /** Cancels a streaming call. */
  signal?: AbortSignal;
}

/** A typed client: unary methods return promises, server-streaming methods async iterables. */
export type Client<S> = {
  [K in keyof Methods<S>]: Methods<S>[K]["methodKind"] extends "server_streaming"
    ? (request?: MessageInitShape<In<Methods<S>[K]>>, options?: CallOptions) => AsyncIterable<MessageShape<Out<Methods<S>[K]>>>
    : (request?: MessageInitShape<In<Methods<S>[K]>>, options?: CallOptions) => Promise<MessageShape<Out<Methods<S>[K]>>>;
} & { close(): void; readonly address: string };

/** Errors from calls carry the gRPC status name as `code` (e.g. "UNAVAILABLE", "DEADLINE_EXCEEDED"). */
function callError(method: DescMethod, address: string, e: unknown): GrpcError {
  const code = typeof (e as grpc.ServiceError)?.code === "number" ? grpc.status[(e as grpc.ServiceError).code] : "unknown";
  const details = (e as grpc.ServiceError)?.details || errorMessage(e);
  return new GrpcError(String(code), `${method.parent.name}.${method.name} at ${address}: ${details}`, { cause: e });
}

/** Creates a typed client for `desc` at `address` ("host:port"), plaintext. */
export function createClient<S extends DescService>(desc: S, address: string): Client<S> {
  const Ctor = grpc.makeGenericClientConstructor(serviceDefinition(desc), desc.typeName);
  const raw = new Ctor(address, grpc.credentials.createInsecure()) as unknown as Record<string, (...a: unknown[]) => unknown> & grpc.Client;
  const client: Record<string, unknown> = { address, close: () => raw.close() };
  for (const method of desc.methods) {
    if (method.methodKind === "unary") {
      client[method.localName] = (req: MessageInitShape<DescMessage> = {}, o: CallOptions = {}) =>
        new Promise((resolve, reject) => {
          const deadline = new Date(Date.now() + (o.timeoutMs ?? 5000));
          raw[method.localName].call(raw, create(method.input, req), new grpc.Metadata(), { deadline }, (err: grpc.ServiceError | null, res: unknown) =>
            err ? reject(callError(method, address, err)) : resolve(res),
          );
        });
    } else if (method.methodKind === "server_streaming") {
      client[method.localName] = (req: MessageInitShape<DescMessage> = {}, o: CallOptions = {}) => ({
        async *[Symbol.asyncIterator]() {
          const call = raw[method.localName].call(raw, create(method.input, req)) as grpc.ClientReadableStream<unknown>;
          const onAbort = () => call.cancel();
          o.signal?.addEventListener("abort", onAbort, { once: true });
          try {
            for await (const m of call) yield m;
          } catch (e) {
            if ((e as grpc.ServiceError).code === grpc.status.CANCELLED && o.signal?.aborted) return;
            throw callError(method, address, e);
          } finally {
            o.signal?.removeEventListener("abort", onAbort);
            call.cancel();
          }
        },
      });
    }
  }
  return client as Client<S>;
}

/** Asks `address` for its health ("" = the whole server). Never throws: unreachable = UNKNOWN + error. */
export async function checkHealth(address: string, service = "", timeoutMs = 2000): Promise<{ status: ServingStatus; error?: string }> {
  const client = createClient(Health, address);
  try {
    const res = await client.check({ service }, { timeoutMs });
    return { status: res.status };
  } catch (e) {
    return { status: ServingStatus.UNKNOWN, error: e instanceof WirescopeError ? e.message : errorMessage(e) };
  } finally {
    client.close();
  }
}

/** "SERVING", "NOT_SERVING", ... */
export function servingStatusName(s: ServingStatus): string {
  return ServingStatus[s] ?? String(s);
}
