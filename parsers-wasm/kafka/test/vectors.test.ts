// Kafka vectors (test/vectors/*.json, built by gen-vectors.mjs) through the shared harness: whole,
// split at every byte boundary, byte by byte, truncated and gapped.
import { vectorSuite } from "../../test-support/vectors.js";

vectorSuite("kafka", "kafka/test/vectors", undefined, { counters: true });
