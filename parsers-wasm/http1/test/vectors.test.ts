// HTTP/1.1 vectors (test/vectors/*.md) through the shared harness: whole, split at every byte
// boundary, byte by byte, truncated and gapped.
import { vectorSuite } from "../../test-support/vectors.js";

vectorSuite("http1", "http1/test/vectors");
