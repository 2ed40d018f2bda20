// One frontend message waiting for its response(s), and what the responses said about it.
// Record-making items are Query, Execute, FunctionCall, the login (startup through
// ReadyForQuery) and a Parse whose Sync batch has no Execute (a prepare on its own); Bind,
// Describe, Close and Sync are kept so that responses pair with the message they answer.

/** Pseudo message kinds for the login and for a CancelRequest. */
export const K_LOGIN: u32 = 0x100;
export const K_CANCEL: u32 = 0x101;

export class Item {
  kind: u32 = 0;
  startNs: i64 = 0;
  reqBytes: i64 = 0;
  /** Writes a record when answered (or incomplete at close / after a gap). */
  record: bool = false;
  /** Describe of a statement: ParameterDescription, then RowDescription or NoData. */
  describeStmt: bool = false;
  /** Statement text (Query, Parse, and Execute through its portal), at most MAX_TEXT bytes. */
  text: ArrayBuffer | null = null;
  /** Named prepared statement / portal ("" = unnamed). */
  stmtName: string = "";
  portalName: string = "";
  /** The statement of this Execute was prepared before the capture saw it. */
  unknownStmt: bool = false;

  // ---- what the responses said ----
  rows: i64 = -1;
  /** Last CommandComplete tag without its counts ("SELECT", "INSERT", "CREATE TABLE"). */
  tag: ArrayBuffer | null = null;
  statements: i32 = 0;
  error: bool = false;
  sqlstate: ArrayBuffer | null = null;
  severity: ArrayBuffer | null = null;
  message: ArrayBuffer | null = null;
  notices: i32 = 0;
  noticeCode: ArrayBuffer | null = null;
  /** COPY: 'i' (FROM STDIN), 'o' (TO STDOUT), 'b' (both, replication); 0 none. */
  copy: u32 = 0;
  suspended: bool = false;
  emptyQuery: bool = false;

  // ---- login ----
  user: ArrayBuffer | null = null;
  database: ArrayBuffer | null = null;
  application: ArrayBuffer | null = null;
  authMethod: string = "";
  authOk: bool = false;
  sslRefused: bool = false;
  gssRefused: bool = false;
  tls: bool = false;
  serverVersion: ArrayBuffer | null = null;
  /** CancelRequest: the backend it targets (the secret key is never kept). */
  backendPid: i64 = -1;
}
