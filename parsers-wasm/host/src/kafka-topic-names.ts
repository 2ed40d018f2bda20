// Kafka topic ids named across plugin instances and parser replicas, on the records the kafka
// plugin writes (host-side record enrichment: the plugin ABI is unchanged).
//
// Fetch v13+ and Produce v13+ name topics by a 16-byte id only. The plugin names an id from the
// Metadata v10+ responses its own instance decoded (parsers-wasm/kafka/topic-ids.ts); an id taught
// on a connection of another instance, or of another replica, stays in `kafka.topic_ids`. The
// plugin also writes, on each Metadata record, the pairs its instance had not known:
//
//   Metadata record   kafka.topic_id_names = ["<32 hex>=<name>", ...]   learned here, removed
//   Fetch record      kafka.topic_ids      = ["<32 hex>", ...]          named here when known:
//                     moved to kafka.topics / resource / messaging.destination.name
//
// Topic ids are random v4 UUIDs the cluster assigns (never reused), so an id names the same topic
// wherever it was seen and the directory needs no node or cluster key. What the directory learns
// from its own records it hands to `onLearned` (the parser shares it over a NATS KV bucket, see
// services/parser/src/topic-names-nats.ts); what others learned comes in through learn(). A
// record is named from what is known when it is written: an id whose Metadata another replica
// decodes later stays an id, never a guessed name.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Generations } from "@wirescope/runtime/generations";
import { AttributeValueSchema, RecordSchema, StringListSchema, type Record } from "@wirescope/wire/gen/wirescope/v1/record_pb";

export interface TopicNameOptions {
  /** Ids remembered, in two generations of half as many (`Generations`): the last maxIds/2
   *  learned are always known; past maxIds the older half is forgotten at once. */
  maxIds: number;
  /** Topics kept per record (the plugin's own cap, MAX_TOPICS). */
  maxTopics: number;
}

export const DEFAULT_TOPIC_NAME_OPTIONS: TopicNameOptions = { maxIds: 65536, maxTopics: 64 };

/** Counts of what process() did, for the caller's counters. */
export interface TopicNameCounts {
  /** Pairs learned from this replica's Metadata records. */
  learned: number;
  /** Ids of Fetch/Produce records named by the directory (the plugin instance did not know them). */
  named: number;
  /** Ids that stayed unnamed. */
  unnamed: number;
  /** Records that could not be decoded (left as they were). */
  malformed: number;
}

const NAMES_KEY = "kafka.topic_id_names";
const IDS_KEY = "kafka.topic_ids";
/** Both keys start with this: records without it are passed on after one byte search. */
const PREFIX = Buffer.from("kafka.topic_id");
const ID = /^[0-9a-f]{32}$/;

export class TopicNameDirectory {
  /** Oldest-first eviction from one Map cost ~20 µs per id learned past 65,536 (V8 walks the
   *  deleted entries before the first live key); a generation is dropped whole instead. */
  private readonly names: Generations<string, string>;
  readonly counts: TopicNameCounts = { learned: 0, named: 0, unnamed: 0, malformed: 0 };
  private readonly opts: TopicNameOptions;

  constructor(
    /** Called with each pair this directory learned from a record (not with those given to learn()). */
    private readonly onLearned: (id: string, name: string) => void = () => {},
    opts: Partial<TopicNameOptions> = {},
  ) {
    this.opts = { ...DEFAULT_TOPIC_NAME_OPTIONS, ...opts };
    this.names = new Generations(Math.max(1, Math.floor(this.opts.maxIds / 2)));
  }

  get size(): number {
    return this.names.size;
  }

  get(id: string): string | undefined {
    return this.names.get(id);
  }

  /** Remembers id → name (from another replica, or a record); true when it was not known so. */
  learn(id: string, name: string): boolean {
    if (!ID.test(id) || !name) return false;
    const m = this.names;
    if (m.get(id) === name) return false;
    m.set(id, name);
    return true;
  }

  /**
   * A kafka record's bytes (plugin fields): learns the pairs of a Metadata record (and removes
   * them from it), names the ids of a Fetch/Produce record it knows. Returns the bytes unchanged
   * (the same array) when there is nothing to do, which one byte search decides for most records.
   */
  process(bytes: Uint8Array): Uint8Array {
    if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(PREFIX) < 0) return bytes;
    let rec: Record;
    try {
      rec = fromBinary(RecordSchema, bytes);
    } catch {
      this.counts.malformed++;
      return bytes;
    }
    let changed = false;
    const pairs = listOf(rec, NAMES_KEY);
    if (pairs) {
      for (const p of pairs) {
        const eq = p.indexOf("=");
        const id = p.slice(0, eq);
        const name = p.slice(eq + 1);
        if (eq > 0 && this.learn(id, name)) {
          this.counts.learned++;
          this.onLearned(id, name);
        }
      }
      delete rec.attributes[NAMES_KEY];
      changed = true;
    }
    const ids = listOf(rec, IDS_KEY);
    if (ids) {
      const left: string[] = [];
      const topics = listOf(rec, "kafka.topics") ?? [];
      const before = topics.length;
      for (const id of ids) {
        const name = this.names.get(id);
        if (name === undefined) left.push(id);
        else if (!topics.includes(name) && topics.length < this.opts.maxTopics) topics.push(name);
      }
      this.counts.named += ids.length - left.length;
      this.counts.unnamed += left.length;
      if (left.length < ids.length) {
        changed = true;
        if (left.length) setList(rec, IDS_KEY, left);
        else delete rec.attributes[IDS_KEY];
        if (topics.length > before) {
          setList(rec, "kafka.topics", topics);
          rec.resource = topics.join(",");
          if (topics.length === 1) rec.attributes["messaging.destination.name"] = create(AttributeValueSchema, { value: { case: "stringValue", value: topics[0]! } });
          else delete rec.attributes["messaging.destination.name"];
        }
      }
    }
    return changed ? toBinary(RecordSchema, rec) : bytes;
  }
}

function listOf(rec: Record, key: string): string[] | undefined {
  const v = rec.attributes[key]?.value;
  return v?.case === "stringList" ? [...v.value.values] : undefined;
}

function setList(rec: Record, key: string, values: string[]): void {
  rec.attributes[key] = create(AttributeValueSchema, { value: { case: "stringList", value: create(StringListSchema, { values }) } });
}
