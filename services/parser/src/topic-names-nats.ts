// Kafka topic id → name shared by every parser replica: JetStream KV bucket
// `wirescope-kafka-topics`, one key per topic id (32 hex digits), the topic name as its value.
//
//   replica ──put (a pair its own Metadata records taught)──▶ KV wirescope-kafka-topics/<id> = name
//   replica ◀──watch (snapshot, then every put)────────────── pairs any replica learned
//
// The directory (@wirescope/plugin-host TopicNameDirectory) names the topic ids of Fetch/Produce
// records from what it knows when a record is written; this adapter only moves pairs. A pair is
// put once per replica (the directory reports only what is new to it), ids are never reused by
// Kafka, so the bucket keeps one revision per key and no TTL; its size is bounded (oldest
// discarded). A put that fails is counted, and the pair is put again only if another Metadata
// record teaches it anew.
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm, type KV } from "@nats-io/kv";
import { NatsError, SupervisedLoop, errorMessage, iterateRun, type Counters, type HealthGate, type Logger } from "@wirescope/runtime";
import { type TopicNameDirectory } from "@wirescope/plugin-host";

export const TOPIC_NAMES_BUCKET = "wirescope-kafka-topics";

export interface TopicNameSharing {
  /** Hand this to the directory as its onLearned. */
  put(id: string, name: string): void;
  stop(): Promise<void>;
}

/**
 * Opens the bucket, loads its snapshot into `dir` and keeps watching it. The returned `put` is
 * what the directory calls with pairs it learned from this replica's records.
 */
export async function shareTopicNames(
  nc: NatsConnection,
  dir: TopicNameDirectory,
  opts: { bucket: string; replicas?: number; maxBytes?: number; health?: HealthGate },
  counters: Counters,
  log: Logger,
): Promise<TopicNameSharing> {
  let kv: KV;
  try {
    kv = await new Kvm(nc).create(opts.bucket, { history: 1, replicas: opts.replicas ?? 1, max_bytes: opts.maxBytes ?? 64 * 1024 * 1024 });
  } catch (e) {
    throw new NatsError("kv", `cannot open KV bucket ${opts.bucket} (is JetStream enabled on nats-server?): ${errorMessage(e)}`, { cause: e });
  }
  // Kept watching (topic_names_watch_restarts.<reason>); a restarted watch reads the snapshot again.
  const watch = new SupervisedLoop(
    async () => {
      const w = await kv.watch({ key: ">" });
      return iterateRun(
        w,
        (e) => {
          if (e.operation === "PUT" && dir.learn(e.key, e.string())) counters.add("kafka_topic_ids.shared_in");
        },
        () => w.stop(),
      );
    },
    { name: "topic_names_watch", counters, log, health: opts.health },
  );
  return {
    put(id, name) {
      kv.put(id, name).then(
        () => counters.add("kafka_topic_ids.shared_out"),
        (e) => {
          counters.add("kafka_topic_ids.share_failed");
          log.debug({ err: errorMessage(e) }, "kafka topic id not shared");
        },
      );
    },
    stop: () => watch.stop(),
  };
}
