// Errors at boundaries: one class per boundary, each with a stable code and the original cause.
// A hot-path decode failure is a counter, not one of these.

/** Base class: `code` is stable and machine-readable, `message` is one line for humans. */
export class WirescopeError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /** Wraps any thrown value, keeping an existing error of this class as is. */
  static from<T extends WirescopeError>(this: new (code: string, message: string, options?: { cause?: unknown }) => T, reason: unknown, code = "unknown"): T {
    if (reason instanceof this) return reason;
    return new this(code, errorMessage(reason), { cause: reason });
  }
}

/** Bad flags, environment or files given by the user. */
export class ConfigError extends WirescopeError {}
/** Talking to nats-server (connect, publish, subscribe, KV). */
export class NatsError extends WirescopeError {}
/** The gRPC control plane (serve, bind, call). */
export class GrpcError extends WirescopeError {}
/** Talking to InfluxDB. */
export class InfluxError extends WirescopeError {}
/** A service failed to build or crashed while running. */
export class ServiceError extends WirescopeError {}

/** One line describing any thrown value. */
export function errorMessage(reason: unknown): string {
  if (reason instanceof Error) {
    // fetch() says only "fetch failed"; why (refused, no such host, timed out) is in its cause.
    if (reason instanceof TypeError && reason.message === "fetch failed" && reason.cause) {
      const c = reason.cause as { message?: unknown; code?: unknown };
      const why = (typeof c.message === "string" && c.message) || (typeof c.code === "string" && c.code);
      if (why) return `fetch failed: ${why.split("\n")[0]}`;
    }
    return reason.message.split("\n")[0] || reason.name;
  }
  return String(reason);
}
