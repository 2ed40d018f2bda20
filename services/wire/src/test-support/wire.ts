// Test support for the hand-written codecs: a message with every field of proto/ set, by
// reflection over the generated schema, so a field added to proto/ is set here without anyone
// writing it down, and a codec that does not carry it fails its round trip against protobuf-es.
// Used by the codecs' tests in every service, imported by path (@wirescope/wire/test-support/wire).
import { clearField, clone, create, ScalarType, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

/** Options of `everyField`. */
export interface EveryFieldOptions {
  /** Which member of a oneof to set (default: the first). */
  oneof?: (oneofName: string, members: readonly DescField[]) => DescField;
  /** A value of one's own for a field (`Message.field` as in the schema's typeName and localName), or undefined for the default. */
  value?: (message: string, field: string) => unknown;
  /** Salt for the values, so two messages filled with different salts differ in every field. */
  salt?: number;
}

/**
 * A message of `schema` with every field set to a value other than its default: strings with a
 * non-ASCII character, 64-bit numbers past 2^53, numbers that take several varint bytes, the
 * last enum value, nested messages filled the same way, one entry per map, two per list.
 */
export function everyField<Desc extends DescMessage>(schema: Desc, o: EveryFieldOptions = {}, depth = 0): MessageShape<Desc> {
  const salt = o.salt ?? 0;
  const init: Record<string, unknown> = {};
  const oneofs = new Map<string, DescField>();
  for (const f of schema.fields) {
    if (f.oneof) {
      if (!oneofs.has(f.oneof.localName)) oneofs.set(f.oneof.localName, o.oneof ? o.oneof(f.oneof.name, f.oneof.fields) : f.oneof.fields[0]!);
      if (oneofs.get(f.oneof.localName) !== f) continue;
    }
    const own = o.value?.(schema.typeName, f.localName);
    const v = own !== undefined ? own : fieldValue(f, salt, o, depth);
    if (f.oneof) init[f.oneof.localName] = { case: f.localName, value: v };
    else init[f.localName] = v;
  }
  return create(schema, init as never);
}

function fieldValue(f: DescField, salt: number, o: EveryFieldOptions, depth: number): unknown {
  const n = f.number + salt;
  const one = (kind: "scalar" | "enum" | "message", scalar?: ScalarType, e?: DescField["enum"], m?: DescMessage, k = 0): unknown => {
    if (kind === "scalar") return scalarOf(scalar!, n + k);
    if (kind === "enum") return e!.values[e!.values.length - 1]!.number;
    if (depth > 4) throw new Error(`everyField: ${m!.typeName} nests too deep`);
    return everyField(m!, { ...o, salt: salt + k }, depth + 1);
  };
  switch (f.fieldKind) {
    case "scalar":
      return one("scalar", f.scalar);
    case "enum":
      return one("enum", undefined, f.enum);
    case "message":
      return one("message", undefined, undefined, f.message);
    case "list":
      return [0, 1].map((k) => one(f.listKind, f.listKind === "scalar" ? f.scalar : undefined, f.listKind === "enum" ? f.enum : undefined, f.listKind === "message" ? f.message : undefined, k));
    case "map": {
      const key = f.mapKey === ScalarType.STRING ? `key-${n}-é` : scalarOf(f.mapKey, n);
      const value = f.mapKind === "scalar" ? scalarOf(f.scalar, n) : f.mapKind === "enum" ? one("enum", undefined, f.enum) : one("message", undefined, undefined, f.message);
      return { [String(key)]: value };
    }
  }
}

function scalarOf(t: ScalarType, n: number): unknown {
  switch (t) {
    case ScalarType.STRING:
      return `f${n}-é`;
    case ScalarType.BYTES:
      return Uint8Array.from({ length: 16 }, (_, i) => (n * 7 + i * 13) & 0xff);
    case ScalarType.BOOL:
      return true;
    case ScalarType.DOUBLE:
      return n + 0.25;
    case ScalarType.FLOAT:
      return Math.fround(1 / (n + 2));
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return -(2n ** 60n) - BigInt(n);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return 2n ** 63n + BigInt(n);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return -1000 - n;
    default: // uint32, fixed32
      return 300_000 + n;
  }
}

/**
 * A copy of `msg` with one field cleared: `path` is its localName, or a dotted path into nested
 * messages ("client.port").
 */
export function withoutField<Desc extends DescMessage>(schema: Desc, msg: MessageShape<Desc>, path: string): MessageShape<Desc> {
  const out = clone(schema, msg);
  let desc: DescMessage = schema;
  let cur = out as unknown as Record<string, unknown>;
  const names = path.split(".");
  for (let i = 0; i < names.length; i++) {
    const f = desc.fields.find((x) => x.localName === names[i]);
    if (!f) throw new Error(`withoutField: ${desc.typeName} has no field ${names[i]}`);
    if (i === names.length - 1) {
      clearField(cur as never, f);
      break;
    }
    if (f.fieldKind !== "message") throw new Error(`withoutField: ${desc.typeName}.${f.localName} is not a message`);
    cur = cur[f.localName] as Record<string, unknown>;
    desc = f.message;
  }
  return out;
}
