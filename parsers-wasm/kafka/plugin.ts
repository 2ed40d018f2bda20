// Kafka wire protocol decoder (entry file: ABI exports only).
export * from "../common/abi";
import { register } from "../common/index";
import { detect } from "./sniff";
import { KafkaConnection } from "./pair";

register(detect, () => new KafkaConnection());
