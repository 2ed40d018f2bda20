// What a hand-written codec does with each field of a message, declared against the generated
// field table: `{ [field]: "read" | "written" | why it is left out }`. The map's type has one key
// per field of proto/ (gen/wire/fields.ts), so a field added to proto/ stops the build at every
// codec that has not said what it does with it; the codec's tests then check the fields it reads
// or writes against protobuf-es (test-support/wire.ts `everyField`).

/** One entry per field of a message's `…Field` const enum (pass `typeof RecordField`). */
export type FieldCoverage<Fields> = { readonly [K in keyof Fields]: "read" | "written" | `not ${string}` };

/** The fields a coverage map reads or writes (for tests: what must round-trip). */
export function coveredFields(c: { readonly [field: string]: string }): string[] {
  return Object.keys(c).filter((k) => !c[k]!.startsWith("not "));
}
