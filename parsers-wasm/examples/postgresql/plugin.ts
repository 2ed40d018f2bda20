// PostgreSQL frontend/backend protocol 3.0 decoder, written as a user plugin against the plugin
// ABI (docs/plugin-abi.md) and its AssemblyScript library, like the Redis example.
//
//   sniff.ts  detection from the first bytes (startup packet, or a plausible message chain) and
//             the message-boundary test used after a gap
//   pair.ts   framing of both directions, the request queue, pairing, errors, COPY, login
//   emit.ts   one request/response pair → one record;  sql.ts  PostgreSQL-aware normalisation
//   types.ts  message codes and length rules;  item.ts  a request waiting for its answer
export * from "../../common/abi";
import { register, Connection } from "../../common/index";
import { detect } from "./sniff";
import { PgConn } from "./pair";

register(detect, (): Connection => new PgConn());
