// MySQL / MariaDB client-server protocol decoder (entry file: ABI exports only).
export * from "../common/abi";
import { register } from "../common/index";
import { detect } from "./sniff";
import { MysqlConnection } from "./pair";

register(detect, () => new MysqlConnection());
