// Connection: the per-connection state object a decoder extends. The ABI glue (abi.ts) owns the
// handle table and the two ByteQueues; the decoder overrides the three callbacks.

import { ByteQueue } from "./queue";
import { OK } from "./status";

export class Connection {
  /** Bytes sent by the client (dir 0) and by the server (dir 1) not yet consumed. */
  readonly q0: ByteQueue = new ByteQueue();
  readonly q1: ByteQueue = new ByteQueue();
  /** Status latched by a negative return; the glue answers it for every later call. */
  dead: i32 = 0;
  /**
   * After SWITCHED: the part of the last input chunk the glue had not yet queued (direction
   * restDir; valid until the next input_buffer call), handed back by conn_tail after the queue.
   */
  restPtr: usize = 0;
  restLen: i32 = 0;
  restDir: i32 = -1;
  /**
   * The connection's counters, cumulative (ABI v2, docs/plugin-abi.md "Counters"): framing
   * errors (a message that could not be parsed, a desynchronisation), messages dropped
   * (a response without its request, a stream over a limit) and bytes dropped while
   * resynchronising. The glue reports their growth to the host. A decoder adds to them, or
   * keeps its own and copies them here in syncCounters().
   */
  errors: i64 = 0;
  drops: i64 = 0;
  droppedBytes: i64 = 0;
  /** What the glue last reported of each counter. */
  repErrors: i64 = 0;
  repDrops: i64 = 0;
  repDroppedBytes: i64 = 0;

  /** The queue of direction `dir` (0 client, 1 server). */
  @inline q(dir: i32): ByteQueue {
    return dir == 0 ? this.q0 : this.q1;
  }

  /**
   * New bytes are in `q` (direction `dir`), the last chunk stamped `tsNs`. Consume whole
   * messages, leave partial ones in the queue, write records with Rec. Return OK or a negative
   * status (status.ts). Must not throw: a throw aborts the whole instance.
   */
  onData(dir: i32, q: ByteQueue, tsNs: i64): i32 {
    return OK;
  }

  /**
   * The capture missed `len` bytes of direction `dir` (0 = unknown amount). The queue has
   * already been cleared (unless the gap fell inside a skip(), in which case this is not
   * called). Resynchronise: forget the message in progress, mark requests that were waiting
   * on the missing bytes.
   */
  onGap(dir: i32, len: i32, tsNs: i64): i32 {
    return OK;
  }

  /** The connection ended: write requests still waiting for a response with Rec.incomplete(). */
  onClose(tsNs: i64): i32 {
    return OK;
  }

  /** Called by the glue before it reads the counters: copy counters kept elsewhere into them. */
  syncCounters(): void {}

  /** Called after conn_free; release anything held outside the GC (the queues are freed by the glue). */
  onFree(): void {}
}
