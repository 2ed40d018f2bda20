// Topic id → name, learned from Metadata v10+ responses and shared by every connection this
// plugin instance decodes. Fetch v13+ and Produce v13+ name topics by id only, and clients ask
// Metadata on one connection (often the bootstrap broker's) and fetch on another (the
// partition leader's), so a per-connection map would miss most of them.
//
// Why the instance and not a per-node map in the host: topic ids are random v4 UUIDs assigned
// by the cluster, so an id names the same topic whichever node or connection it was seen on and
// the map needs no node key; and the plugin ABI stays as it is (no host call, no new export).
// What it cannot see: a Metadata response decoded by another instance or parser replica (the
// connections of a node are spread over partitions), or one decoded after the Fetch. Those
// topics are written as ids in `kafka.topic_ids`, never as a guessed name (docs/protocols.md).
// For those, the Metadata record carries the pairs this instance had not known
// (`kafka.topic_id_names`): the host shares them between instances and replicas and names the
// ids of later records (parsers-wasm/host/src/kafka-topic-names.ts).

/** Ids remembered per instance; past this the oldest learned is forgotten first. */
export const MAX_TOPIC_IDS: i32 = 8192;

export class TopicNames {
  private readonly names: Map<string, string> = new Map<string, string>();
  /** ids in the order learned (a ring once full), to forget the oldest */
  private readonly order: string[] = [];
  private next: i32 = 0;

  /** Remembers id → name; true when it was not known so (new, or renamed). */
  learn(id: string, name: string): bool {
    const m = this.names;
    if (m.has(id)) {
      if (m.get(id) == name) return false;
      m.set(id, name);
      return true;
    }
    const o = this.order;
    if (o.length < MAX_TOPIC_IDS) o.push(id);
    else {
      m.delete(o[this.next]);
      o[this.next] = id;
      this.next = (this.next + 1) % MAX_TOPIC_IDS;
    }
    m.set(id, name);
    return true;
  }

  has(id: string): bool {
    return this.names.has(id);
  }

  get(id: string): string {
    return this.names.get(id);
  }

  get size(): i32 {
    return this.names.size;
  }
}

/** The one map of this instance. */
export const topicNames = new TopicNames();
