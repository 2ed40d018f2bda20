// Dispatch of request and response bodies to the per-API decoders. An API without a body
// decoder still gets its name, version, correlation id and client id; its error code is unknown.
import { Reader } from "../reader";
import { KafkaTxn } from "../types";
import { TopicNames } from "../topic-ids";
import { produceRequest, produceResponse } from "./produce";
import { fetchRequest, fetchResponse } from "./fetch";
import { listOffsetsRequest, listOffsetsResponse } from "./list-offsets";
import { metadataRequest, metadataResponse } from "./metadata";
import { offsetCommitRequest, offsetCommitResponse } from "./offset-commit";
import { offsetFetchRequest, offsetFetchResponse } from "./offset-fetch";
import { findCoordinatorRequest, findCoordinatorResponse } from "./find-coordinator";
import { groupRequest, groupResponse } from "./group";
import { apiVersionsRequest, apiVersionsResponse } from "./api-versions";
import { initProducerIdResponse } from "./init-producer-id";
import { createTopicsRequest, createTopicsResponse, deleteTopicsRequest, deleteTopicsResponse } from "./topics-admin";

/** Newest version per api key whose body layout we know (index = api key; -1 = header only). */
const MAX_DECODED_VERSION: StaticArray<i8> = [13, 17, 10, 13, -1, -1, -1, -1, 9, 9, 6, 9, 4, 5, 5, -1, -1, -1, 4, 7, 6, -1, 5];

export function bodyKnown(key: i32, v: i32): bool {
  if (key < 0 || key >= MAX_DECODED_VERSION.length) return false;
  return v >= 0 && v <= <i32>MAX_DECODED_VERSION[key];
}

/** Walks a request body; returns whether it was read to the end of what we need without damage. */
export function decodeRequest(key: i32, v: i32, flex: bool, r: Reader, t: KafkaTxn): bool {
  if (!bodyKnown(key, v)) return false;
  switch (key) {
    case 0: produceRequest(r, v, flex, t); break;
    case 1: fetchRequest(r, v, flex, t); break;
    case 2: listOffsetsRequest(r, v, flex, t); break;
    case 3: metadataRequest(r, v, flex, t); break;
    case 8: offsetCommitRequest(r, v, flex, t); break;
    case 9: offsetFetchRequest(r, v, flex, t); break;
    case 10: findCoordinatorRequest(r, v, flex, t); break;
    case 11: case 12: case 13: case 14: groupRequest(r, v, flex, t); break;
    case 18: apiVersionsRequest(r, v, flex, t); break;
    case 19: createTopicsRequest(r, v, flex, t); break;
    case 20: deleteTopicsRequest(r, v, flex, t); break;
    case 22: break; // InitProducerId: nothing we report in the request
    default: return false;
  }
  return r.ok;
}

export function decodeResponse(key: i32, v: i32, flex: bool, r: Reader, t: KafkaTxn, ids: TopicNames): bool {
  if (!bodyKnown(key, v)) return false;
  switch (key) {
    case 0: produceResponse(r, v, flex, t); break;
    case 1: fetchResponse(r, v, flex, t); break;
    case 2: listOffsetsResponse(r, v, flex, t); break;
    case 3: metadataResponse(r, v, flex, t, ids); break;
    case 8: offsetCommitResponse(r, v, flex, t); break;
    case 9: offsetFetchResponse(r, v, flex, t); break;
    case 10: findCoordinatorResponse(r, v, flex, t); break;
    case 11: case 12: case 13: case 14: groupResponse(r, key, v, flex, t); break;
    case 18: apiVersionsResponse(r, v, flex, t); break;
    case 19: createTopicsResponse(r, v, flex, t); break;
    case 20: deleteTopicsResponse(r, v, flex, t); break;
    case 22: initProducerIdResponse(r, v, flex, t); break;
    default: return false;
  }
  return r.ok;
}
