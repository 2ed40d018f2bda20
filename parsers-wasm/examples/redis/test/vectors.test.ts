// Redis vectors, run whole, split at every byte, byte by byte, truncated and with gaps.
import { vectorSuite } from "../../../test-support/index.js";

vectorSuite("redis", "examples/redis/test/vectors");
