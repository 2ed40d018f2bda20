// Kafka protocol constants and the per-connection state types.
// Spec: https://kafka.apache.org/protocol.html and the message schemas in
// clients/src/main/resources/common/message/*.json of apache/kafka.
import { Reader } from "./reader";

/** API names by api key (index). Keys past the table are written as "ApiKey<N>". */
const API_NAMES: string[] = [
  "Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr", "StopReplica", "UpdateMetadata",
  "ControlledShutdown", "OffsetCommit", "OffsetFetch", "FindCoordinator", "JoinGroup", "Heartbeat",
  "LeaveGroup", "SyncGroup", "DescribeGroups", "ListGroups", "SaslHandshake", "ApiVersions",
  "CreateTopics", "DeleteTopics", "DeleteRecords", "InitProducerId", "OffsetForLeaderEpoch",
  "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "WriteTxnMarkers", "TxnOffsetCommit",
  "DescribeAcls", "CreateAcls", "DeleteAcls", "DescribeConfigs", "AlterConfigs",
  "AlterReplicaLogDirs", "DescribeLogDirs", "SaslAuthenticate", "CreatePartitions",
  "CreateDelegationToken", "RenewDelegationToken", "ExpireDelegationToken",
  "DescribeDelegationToken", "DeleteGroups", "ElectLeaders", "IncrementalAlterConfigs",
  "AlterPartitionReassignments", "ListPartitionReassignments", "OffsetDelete",
  "DescribeClientQuotas", "AlterClientQuotas", "DescribeUserScramCredentials",
  "AlterUserScramCredentials", "Vote", "BeginQuorumEpoch", "EndQuorumEpoch", "DescribeQuorum",
  "AlterPartition", "UpdateFeatures", "Envelope", "FetchSnapshot", "DescribeCluster",
  "DescribeProducers", "BrokerRegistration", "BrokerHeartbeat", "UnregisterBroker",
  "DescribeTransactions", "ListTransactions", "AllocateProducerIds", "ConsumerGroupHeartbeat",
  "ConsumerGroupDescribe", "ControllerRegistration", "GetTelemetrySubscriptions", "PushTelemetry",
  "AssignReplicasToDirs", "ListClientMetricsResources", "DescribeTopicPartitions",
  "ShareGroupHeartbeat", "ShareGroupDescribe", "ShareFetch", "ShareAcknowledge", "AddRaftVoter",
  "RemoveRaftVoter", "UpdateRaftVoter", "InitializeShareGroupState", "ReadShareGroupState",
  "WriteShareGroupState", "DeleteShareGroupState", "ReadShareGroupStateSummary",
  "StreamsGroupHeartbeat", "StreamsGroupDescribe", "DescribeShareGroupOffsets",
  "AlterShareGroupOffsets", "DeleteShareGroupOffsets",
];

/**
 * First flexible version (compact strings/arrays + tagged fields) per api key; -1 = never.
 * Keys past the table were introduced after KIP-482 and are flexible from v0.
 */
const FIRST_FLEXIBLE: StaticArray<i8> = [
  9, 12, 6, 9, 4, 2, 6, 3, 8, 6, 3, 6, 4, 4, 4, 5, 3, -1, 3, 5, 4, 2, 2, 4, 3, 3, 3, 1, 3, 2, 2, 2,
  4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 0, 0, -1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/** Highest api key we name; a request with a key past this is still framed but named generically. */
export const MAX_KNOWN_API_KEY: i32 = API_NAMES.length - 1;

export function apiName(key: i32): string {
  if (key >= 0 && key < API_NAMES.length) return API_NAMES[key];
  return "ApiKey" + key.toString();
}

/** Whether (key, version) uses flexible encoding (request header v2, response header v1). */
export function isFlexible(key: i32, version: i32): bool {
  if (key < 0) return false;
  if (key >= FIRST_FLEXIBLE.length) return true;
  const first = <i32>FIRST_FLEXIBLE[key];
  return first >= 0 && version >= first;
}

/**
 * Request header version: v0 only for ControlledShutdown v0 (no client id), v2 for flexible
 * requests, v1 otherwise.
 */
export function requestHeaderVersion(key: i32, version: i32): i32 {
  if (key == 7 && version == 0) return 0;
  return isFlexible(key, version) ? 2 : 1;
}

/**
 * Response header version. ApiVersions responses always use header v0 (no tagged fields), even
 * for flexible request versions, so a client that sent a too-new version can still read it.
 */
export function responseHeaderVersion(key: i32, version: i32): i32 {
  if (key == 18) return 0;
  return isFlexible(key, version) ? 1 : 0;
}

/** Limits that keep one connection's state bounded. */
export const MAX_PENDING: i32 = 1024; // requests waiting for a response
export const MAX_TOPICS: i32 = 64; // topic names kept per record
export const MAX_LEARNED_IDS: i32 = 1024; // id=name pairs a Metadata record hands to the host
export const MAX_BODY_PREFIX: i32 = 256 << 10; // bytes of one message buffered for decoding (under the queue limit)

/** What one request/response pair yields; filled by the api/ decoders. */
export class KafkaTxn {
  apiKey: i32 = -1;
  apiVersion: i32 = 0;
  correlationId: i32 = 0;
  clientId: string | null = null;
  topics: string[] = [];
  /** topic ids (16-byte UUIDs, hex) seen where the version carries ids instead of names */
  topicIds: string[] = [];
  /** Metadata v10+: "id=name" for the ids this instance learned from the response (see topic-ids.ts) */
  learnedIds: string[] = [];
  errorCode: i32 = 0;
  groupId: string | null = null;
  /** false when the body could not be walked (unknown api, version past what we know, cut) */
  requestDecoded: bool = false;
  responseDecoded: bool = false;
  /** Produce with acks=0: the broker sends no response */
  noResponse: bool = false;
  /** ApiVersions: how many api keys the broker listed */
  apiVersionsCount: i32 = -1;
  /** RECORDS fields walked (Produce request, Fetch response) and what their batch headers say (api/records.ts) */
  recordFields: i32 = 0;
  records: i64 = 0;
  /** bit i set: a batch used codec i (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd) */
  codecs: i32 = 0;
  /** some records could not be counted (legacy compressed set, damage, a gap or the end of the connection inside the message) */
  recordsUncounted: bool = false;
  /** the walk of its RECORDS fields is still going (api/records.ts): the counts are not final */
  walking: bool = false;
  startNs: i64 = 0;
  endNs: i64 = 0;
  reqBytes: i64 = 0;
  respBytes: i64 = 0;
  requestCut: bool = false;
  /** the request named topics (by name or id): its response repeats them (set when the response begins) */
  requestNamed: bool = false;

  addTopic(name: string): void {
    if (name.length == 0) return;
    const t = this.topics;
    for (let i = 0; i < t.length; i++) if (t[i] == name) return;
    if (t.length < MAX_TOPICS) t.push(name);
  }

  addTopicId(id: string): void {
    const t = this.topicIds;
    for (let i = 0; i < t.length; i++) if (t[i] == id) return;
    if (t.length < MAX_TOPICS) t.push(id);
  }

  learnedId(id: string, name: string): void {
    if (this.learnedIds.length < MAX_LEARNED_IDS) this.learnedIds.push(id + "=" + name);
  }

  /**
   * A topic name in a response: the request already named its topics (the response repeats
   * them), so it is only decoded when the request named none (then every topic it lists; before,
   * only the first was kept).
   */
  responseTopic(r: Reader, flexible: bool): void {
    if (this.requestNamed) r.skipStr(flexible);
    else this.addTopic(r.str(flexible));
  }

  /** Keeps the first non-zero error code, as the record's status. */
  error(code: i32): void {
    if (this.errorCode == 0 && code != 0) this.errorCode = code;
  }
}
