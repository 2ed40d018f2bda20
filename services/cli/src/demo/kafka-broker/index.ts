// A protocol-correct Kafka TEST broker for integration tests (see README.md).
export { KafkaTestBroker, startKafkaTestBroker, ERR, type BrokerOptions } from "./broker.js";
