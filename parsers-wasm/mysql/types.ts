// MySQL client/server protocol constants and per-connection state types.
// Spec: https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html
//       https://mariadb.com/kb/en/clientserver-protocol/

import { TraceCtx, TRACE_W3C } from "../http1/trace";

// Capability flags (Protocol::CapabilityFlags).
export const CLIENT_CONNECT_WITH_DB: u32 = 0x00000008;
export const CLIENT_COMPRESS: u32 = 0x00000020;
export const CLIENT_PROTOCOL_41: u32 = 0x00000200;
export const CLIENT_SSL: u32 = 0x00000800;
export const CLIENT_SECURE_CONNECTION: u32 = 0x00008000;
export const CLIENT_PLUGIN_AUTH: u32 = 0x00080000;
export const CLIENT_CONNECT_ATTRS: u32 = 0x00100000;
export const CLIENT_PLUGIN_AUTH_LENENC_DATA: u32 = 0x00200000;
export const CLIENT_DEPRECATE_EOF: u32 = 0x01000000;
export const CLIENT_OPTIONAL_RESULTSET_METADATA: u32 = 0x02000000;
export const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u32 = 0x04000000;
export const CLIENT_QUERY_ATTRIBUTES: u32 = 0x08000000;

// Server status flags carried by OK and EOF packets.
export const SERVER_MORE_RESULTS_EXISTS: u32 = 0x0008;
export const SERVER_STATUS_CURSOR_EXISTS: u32 = 0x0040;

/** Largest payload of one packet; a packet this long continues in the next one. */
export const MAX_PACKET: i32 = 0xffffff;
/** Bytes of one packet's payload buffered for decoding; the rest is skipped unread. */
export const PAYLOAD_PREFIX: i32 = 64 * 1024;
/** Queue cap per direction: the host's largest chunk plus a buffered packet prefix. */
export const QUEUE_LIMIT: i32 = (1 << 20) + PAYLOAD_PREFIX + 64;
/** Bytes of statement text kept per command (db.query.text and the resource are cut further by Rec). */
export const MAX_QUERY_TEXT: i32 = 16 * 1024;
/** Prepared statements remembered per connection (each holds its statement text). */
export const MAX_STATEMENTS: i32 = 4096;
/** Query attribute names kept per command (a client library sends at most 32), and bytes per name. */
export const MAX_QUERY_ATTRS: i32 = 32;
export const MAX_ATTR_NAME: i32 = 64;
/** Commands sent before their responses (pipelining) that we keep track of. */
export const MAX_PENDING: i32 = 256;

/** A W3C traceparent parser shared by every transaction (it only fills its own buffer). */
const traceScratch = new TraceCtx();

// Command bytes (the first payload byte of a client packet with sequence id 0).
export const COM_QUIT: u8 = 0x01;
export const COM_INIT_DB: u8 = 0x02;
export const COM_QUERY: u8 = 0x03;
export const COM_FIELD_LIST: u8 = 0x04;
export const COM_STATISTICS: u8 = 0x09;
export const COM_PING: u8 = 0x0e;
export const COM_CHANGE_USER: u8 = 0x11;
export const COM_BINLOG_DUMP: u8 = 0x12;
export const COM_STMT_PREPARE: u8 = 0x16;
export const COM_STMT_EXECUTE: u8 = 0x17;
export const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
export const COM_STMT_CLOSE: u8 = 0x19;
export const COM_STMT_RESET: u8 = 0x1a;
export const COM_STMT_FETCH: u8 = 0x1c;
export const COM_BINLOG_DUMP_GTID: u8 = 0x1e;
export const COM_RESET_CONNECTION: u8 = 0x1f;
export const COM_STMT_BULK_EXECUTE: u8 = 0xfa; // MariaDB

const COMMAND_NAMES: string[] = [
  "COM_SLEEP", "COM_QUIT", "COM_INIT_DB", "COM_QUERY", "COM_FIELD_LIST", "COM_CREATE_DB",
  "COM_DROP_DB", "COM_REFRESH", "COM_SHUTDOWN", "COM_STATISTICS", "COM_PROCESS_INFO",
  "COM_CONNECT", "COM_PROCESS_KILL", "COM_DEBUG", "COM_PING", "COM_TIME", "COM_DELAYED_INSERT",
  "COM_CHANGE_USER", "COM_BINLOG_DUMP", "COM_TABLE_DUMP", "COM_CONNECT_OUT",
  "COM_REGISTER_SLAVE", "COM_STMT_PREPARE", "COM_STMT_EXECUTE", "COM_STMT_SEND_LONG_DATA",
  "COM_STMT_CLOSE", "COM_STMT_RESET", "COM_SET_OPTION", "COM_STMT_FETCH", "COM_DAEMON",
  "COM_BINLOG_DUMP_GTID", "COM_RESET_CONNECTION",
];

/** A byte that can start a command packet (seq 0). */
export function isCommand(b: u32): bool {
  return b < <u32>COMMAND_NAMES.length || b == COM_STMT_BULK_EXECUTE;
}

export function commandName(b: u32): string {
  if (b < <u32>COMMAND_NAMES.length) return COMMAND_NAMES[b];
  if (b == COM_STMT_BULK_EXECUTE) return "COM_STMT_BULK_EXECUTE";
  return "COM_UNKNOWN";
}

/** A prepared statement remembered from its STMT_PREPARE_OK. */
export class Prepared {
  constructor(
    public text: StaticArray<u8>,
    /** num_params: how many positional parameters an EXECUTE sends before any attributes */
    public params: i32,
  ) {}
}

/** How the server answers a command: which response state machine follows it. */
export enum Expect {
  /** no response at all (COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA) */
  None,
  /** one packet: OK, ERR or EOF */
  Ok,
  /** OK / ERR / LOCAL INFILE / result set(s) (text or binary rows) */
  ResultSet,
  /** STMT_PREPARE_OK + parameter and column definitions, or ERR */
  Prepare,
  /** column definitions up to EOF, or ERR (COM_FIELD_LIST) */
  FieldList,
  /** rows up to EOF, or ERR (COM_STMT_FETCH) */
  Rows,
  /** one string packet (COM_STATISTICS) */
  Text,
  /** authentication exchange: OK / ERR, maybe after auth switch and more-data rounds */
  Auth,
  /** a stream we do not follow (binlog dump): the connection stops being decoded */
  Stream,
}

export function expectFor(cmd: u32): Expect {
  switch (cmd) {
    case COM_QUIT:
    case COM_STMT_CLOSE:
    case COM_STMT_SEND_LONG_DATA:
      return Expect.None;
    case COM_QUERY:
    case COM_STMT_EXECUTE:
    case COM_STMT_BULK_EXECUTE:
    case 0x0a: // COM_PROCESS_INFO
      return Expect.ResultSet;
    case COM_STMT_PREPARE:
      return Expect.Prepare;
    case COM_FIELD_LIST:
      return Expect.FieldList;
    case COM_STMT_FETCH:
      return Expect.Rows;
    case COM_STATISTICS:
      return Expect.Text;
    case COM_CHANGE_USER:
      return Expect.Auth;
    case COM_BINLOG_DUMP:
    case COM_BINLOG_DUMP_GTID:
      return Expect.Stream;
    default:
      return Expect.Ok;
  }
}

/** Where a command's response stands (server-side packets parsed so far). */
export enum Rs {
  First, // waiting for the first response packet
  Columns, // column definitions still to come (colsLeft)
  ColumnsEof, // EOF after column definitions (when the connection does not deprecate EOF)
  Rows, // rows until the terminator
  Params, // STMT_PREPARE_OK parameter definitions (paramsLeft)
  ParamsEof,
  PrepColumns, // STMT_PREPARE_OK column definitions (colsLeft)
  PrepColumnsEof,
  Fields, // COM_FIELD_LIST definitions until EOF
  Infile, // LOCAL INFILE: client sends the file, then the server answers OK/ERR
  Done,
}

/** One command (or the login) and what its response said. */
export class MysqlTxn {
  command: string = "";
  cmd: i32 = -1; // command byte; -1 for LOGIN
  query: StaticArray<u8> | null = null; // COM_QUERY / COM_STMT_PREPARE text (UTF-8), or the prepared text of EXECUTE
  schema: string | null = null; // COM_INIT_DB, LOGIN database
  table: string | null = null; // COM_FIELD_LIST
  user: string | null = null; // LOGIN, COM_CHANGE_USER
  authPlugin: string | null = null;
  authPath: string | null = null; // caching_sha2_password: "fast" | "full"
  authSwitch: bool = false;
  tls: bool = false;
  /** the compressed protocol ("zlib" / "zstd") from the login that negotiated it on */
  compression: string | null = null;
  /** compressed packets of the connection so far whose payload could not be decoded */
  compressedLost: i64 = 0;
  serverVersion: string | null = null;
  stmtId: i64 = -1;
  /** query attribute names (CLIENT_QUERY_ATTRIBUTES), in the order sent */
  attrNames: StaticArray<u8>[] | null = null;
  /** trace context from a `traceparent` query attribute: trace id (16), parent span id (8), flags */
  trace: StaticArray<u8> | null = null;
  expect: Expect = Expect.Ok;
  state: Rs = Rs.First;
  // response
  response: string = ""; // OK | ERR | RESULT_SET | STMT_PREPARE_OK | FIELD_LIST | EOF | ...
  errorCode: i32 = 0;
  sqlState: string | null = null;
  errorMessage: StaticArray<u8> | null = null;
  rows: i64 = 0;
  affectedRows: i64 = -1;
  insertId: i64 = -1;
  columns: i32 = -1;
  params: i32 = -1;
  colsLeft: i64 = 0;
  paramsLeft: i64 = 0;
  binary: bool = false;
  /** STMT_PREPARE_OK said RESULTSET_METADATA_NONE: no parameter or column definitions follow */
  noMeta: bool = false;
  // timing and sizes
  startNs: i64 = 0;
  endNs: i64 = 0;
  reqBytes: i64 = 0;
  respBytes: i64 = 0;
  /** the next server sequence id we expect (checks framing) */
  nextSeq: i32 = 1;

  addAttrName(p: usize, n: i32): void {
    let names = this.attrNames;
    if (names === null) this.attrNames = names = [];
    if (names.length >= MAX_QUERY_ATTRS) return;
    if (n > MAX_ATTR_NAME) n = MAX_ATTR_NAME;
    const b = new StaticArray<u8>(n);
    memory.copy(changetype<usize>(b), p, <usize>n);
    names.push(b);
  }

  /** A traceparent attribute's value; kept only when it is a valid W3C traceparent. */
  setTraceparent(p: usize, n: i32): void {
    const c = traceScratch;
    c.reset();
    c.w3c(p, n);
    if (c.format != TRACE_W3C) return;
    const b = new StaticArray<u8>(25);
    memory.copy(changetype<usize>(b), c.traceId, 24);
    b[24] = <u8>c.flags;
    this.trace = b;
  }
}
