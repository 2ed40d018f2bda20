// Writes one KafkaTxn as a wirescope.v1.Record (NDJSON contract in docs/protocols.md):
//   operation = API name, resource = topics joined with ",", status = first non-zero error code
//   or 0 (absent when the response body is not decoded or there was no response), error =
//   status != 0; attributes messaging.system, kafka.api_key, kafka.api_version,
//   kafka.correlation_id, messaging.client.id, kafka.topics, kafka.error_code, ...
import { Rec } from "../common/index";
import { KafkaTxn, apiName } from "./types";
import { TopicNames } from "./topic-ids";
import { codecName } from "./api/records";

export function writeRecord(t: KafkaTxn, incomplete: bool, ids: TopicNames): void {
  // topic ids (Fetch/Produce v13+) are named through what Metadata taught this instance
  let unresolved: string[] | null = null;
  for (let i = 0; i < t.topicIds.length; i++) {
    const id = t.topicIds[i];
    if (ids.has(id)) t.addTopic(ids.get(id));
    else {
      if (unresolved === null) unresolved = [];
      unresolved.push(id);
    }
  }
  Rec.begin("kafka");
  Rec.startNs(t.startNs);
  Rec.durationNs(t.endNs - t.startNs);
  const name = apiName(t.apiKey);
  Rec.operation(name);
  const topics = t.topics;
  if (topics.length > 0) {
    Rec.resourceBegin();
    for (let i = 0; i < topics.length; i++) {
      if (i > 0) Rec.putByte(0x2c);
      Rec.putStr(topics[i]);
    }
    Rec.strEnd();
  }
  const hasStatus = !incomplete && t.responseDecoded;
  if (hasStatus) Rec.status(<i64>t.errorCode);
  Rec.error(hasStatus && t.errorCode != 0);
  Rec.requestBytes(t.reqBytes);
  Rec.responseBytes(t.respBytes);
  if (incomplete) Rec.incomplete();

  Rec.attrStr("messaging.system", "kafka");
  Rec.attrInt("kafka.api_key", <i64>t.apiKey);
  Rec.attrInt("kafka.api_version", <i64>t.apiVersion);
  Rec.attrInt("kafka.correlation_id", <i64>t.correlationId);
  const cid = t.clientId;
  if (cid !== null) Rec.attrStr("messaging.client.id", cid);
  if (topics.length > 0) {
    Rec.listBegin("kafka.topics");
    for (let i = 0; i < topics.length; i++) Rec.listItem(topics[i]);
    Rec.listEnd();
    if (topics.length == 1) Rec.attrStr("messaging.destination.name", topics[0]);
  }
  if (unresolved !== null) {
    const u = unresolved!;
    Rec.listBegin("kafka.topic_ids");
    for (let i = 0; i < u.length; i++) Rec.listItem(u[i]);
    Rec.listEnd();
  }
  const learned = t.learnedIds;
  if (learned.length > 0) {
    Rec.listBegin("kafka.topic_id_names");
    for (let i = 0; i < learned.length; i++) Rec.listItem(learned[i]);
    Rec.listEnd();
  }
  if (hasStatus) Rec.attrInt("kafka.error_code", <i64>t.errorCode);
  const g = t.groupId;
  if (g !== null && g.length > 0) Rec.attrStr("messaging.consumer.group.name", g);
  if (t.apiVersionsCount >= 0) Rec.attrInt("kafka.api_versions_count", <i64>t.apiVersionsCount);
  if (t.noResponse) Rec.attrBool("kafka.no_response", true);
  if (t.recordFields > 0 || t.recordsUncounted) {
    // Produce requests and Fetch responses: records counted from the batch headers
    if (t.recordsUncounted) Rec.attrBool("kafka.records_counted", false);
    else Rec.attrInt("messaging.batch.message_count", t.records);
    if (t.codecs != 0) {
      // the codec of the batches: one name, or the names joined with "," when they differ
      Rec.attrBegin("kafka.compression");
      let first = true;
      for (let i = 0; i < 8; i++) {
        if ((t.codecs & (1 << i)) == 0) continue;
        if (!first) Rec.putByte(0x2c);
        Rec.putStr(codecName(i));
        first = false;
      }
      Rec.strEnd();
    }
  }
  if (!t.requestDecoded && !t.requestCut) Rec.attrBool("kafka.body_decoded", false);
  Rec.end();
}
