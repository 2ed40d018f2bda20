#!/usr/bin/env node
// Writes the NATS users and permissions of services/runtime/src/nats-permissions.ts into the
// nats.conf of deploy/k8s/base/nats.yaml (between its BEGIN/END authorization lines), each
// password read by nats-server from its environment (filled from the Secret wirescope-nats-auth).
// test/foundation-k8s.test.ts fails while the manifest and the table disagree.
// Usage: node scripts/k8s-nats-auth.mjs [--check]     (after node scripts/build.mjs)
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { natsK8sAuthorization } from "../services/runtime/dist/nats-permissions.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const file = path.join(root, "deploy/k8s/base/nats.yaml");
const BEGIN = "    # BEGIN authorization: node scripts/k8s-nats-auth.mjs writes it from services/runtime/src/nats-permissions.ts";
const END = "    # END authorization";
const text = fs.readFileSync(file, "utf8");
const a = text.indexOf(BEGIN);
const b = text.indexOf(END);
if (a < 0 || b < a) {
  console.error(`${path.relative(root, file)}: no "${BEGIN.trim()}" … "${END.trim()}" lines in nats.conf`);
  process.exit(1);
}
const block = natsK8sAuthorization().trimEnd().split("\n").map((l) => `    ${l}`).join("\n");
const next = `${text.slice(0, a)}${BEGIN}\n${block}\n${text.slice(b)}`;
if (process.argv.includes("--check")) {
  if (next !== text) {
    console.error(`${path.relative(root, file)}: its NATS users differ from nats-permissions.ts; run node scripts/k8s-nats-auth.mjs`);
    process.exit(1);
  }
} else if (next !== text) {
  fs.writeFileSync(file, next);
  console.log(`wrote the NATS users into ${path.relative(root, file)}`);
}
