// Return statuses shared by the ABI glue and the decoders (docs/plugin-abi.md, "Exports").
// Decoders return one of these from Connection.onData/onGap/onClose; the glue turns OK into
// "number of records waiting" and passes the negative ones to the host, which stops feeding.

/** Keep going. */
export const OK: i32 = 0;
/** These bytes are not this protocol (the host may try another plugin). */
export const NOT_MINE: i32 = -1;
/** The decoder lost track and cannot resynchronise. */
export const BROKEN: i32 = -2;
/** A per-connection limit (buffered bytes, pending requests) was exceeded. */
export const LIMIT: i32 = -3;
/**
 * The connection switched to another protocol (CONNECT tunnel, 101 Switching Protocols): the
 * records so far are written, and the bytes not consumed (in the queues, see conn_tail) are the
 * first of what it now carries. The host detects that afresh.
 */
export const SWITCHED: i32 = -4;

/** Direction: bytes sent by the client (requests). */
export const CLIENT: i32 = 0;
/** Direction: bytes sent by the server (responses). */
export const SERVER: i32 = 1;
