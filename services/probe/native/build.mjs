#!/usr/bin/env node
// Builds services/probe/native/build/wirescope_probe.node: the addon with libbpf linked statically.
// libbpf comes from a pinned source (Debian bookworm's libbpf 1.1.2 source package, checked by
// sha256) built with -fPIC, because the distribution's libbpf.a is not position-independent and
// cannot go into a shared object. Incremental: does nothing when no input changed.
//   deps: apt packages clang llvm bpftool libelf-dev zlib1g-dev g++ make dpkg-dev (for
//   `apt-get source`, which needs a deb-src entry; scripts/install-deps.sh adds one), or set
//   LIBBPF_TARBALL=/path/libbpf_1.1.2.orig.tar.gz to build offline.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import path from "node:path";
import fs from "node:fs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../..");
const out = path.join(here, "build");
const LIBBPF_VERSION = "1.1.2";
const LIBBPF_DEB = "1.1.2-0+deb12u1";
const LIBBPF_SHA256 = "b50ab60637fb713db78aa98e6ca911ddf13c0799d498a1f6ec03ebffc7dca588";
const tarName = `libbpf_${LIBBPF_VERSION}.orig.tar.gz`;
const libbpfDir = path.join(out, "libbpf");
const libbpfA = path.join(libbpfDir, "usr/lib64/libbpf.a");
const skel = path.join(root, "bpf/build/wirescope.skel.h");
const target = path.join(out, "wirescope_probe.node");

const run = (cmd, args, cwd = out) => execFileSync(cmd, args, { cwd, stdio: ["ignore", "inherit", "inherit"] });
const mtime = (p) => (fs.existsSync(p) ? fs.statSync(p).mtimeMs : 0);

fs.mkdirSync(out, { recursive: true });

function fetchTarball() {
  if (process.env.LIBBPF_TARBALL) return process.env.LIBBPF_TARBALL;
  const dl = path.join(out, "dl");
  const tar = path.join(dl, tarName);
  if (!fs.existsSync(tar)) {
    fs.mkdirSync(dl, { recursive: true });
    try {
      run("apt-get", ["source", "--download-only", `libbpf=${LIBBPF_DEB}`], dl);
    } catch (e) {
      throw new Error(
        `could not fetch the libbpf ${LIBBPF_DEB} source with apt-get (a deb-src entry is needed: run scripts/install-deps.sh), or set LIBBPF_TARBALL`,
        { cause: e },
      );
    }
  }
  return tar;
}

function buildLibbpf() {
  if (fs.existsSync(libbpfA)) return;
  const tar = fetchTarball();
  const sum = createHash("sha256").update(fs.readFileSync(tar)).digest("hex");
  if (sum !== LIBBPF_SHA256) throw new Error(`${tar}: sha256 ${sum} is not the pinned ${LIBBPF_SHA256}`);
  const src = path.join(out, "libbpf-src");
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(src, { recursive: true });
  run("tar", ["-xzf", tar, "-C", src, "--strip-components=1"]);
  fs.mkdirSync(path.join(out, "libbpf-obj"), { recursive: true });
  run("make", ["-s", "-C", path.join(src, "src"), "-j2", "BUILD_STATIC_ONLY=1", `OBJDIR=${path.join(out, "libbpf-obj")}`,
    `DESTDIR=${libbpfDir}`, "CFLAGS=-g -O2 -fPIC -Wall", "install"]);
}

function buildAddon() {
  const srcs = [path.join(here, "addon.cc"), skel, path.join(root, "bpf/wirescope.h"), path.join(root, "bpf/map_sizing.h"), libbpfA, fileURLToPath(import.meta.url)];
  const newest = Math.max(...srcs.map(mtime));
  if (mtime(target) >= newest) return;
  if (!fs.existsSync(skel)) throw new Error(`${skel} missing: run \`make -C bpf\` first`);
  const nodeInclude = path.resolve(path.dirname(process.execPath), "../include/node");
  const napiInclude = path.dirname(fileURLToPath(import.meta.resolve("node-addon-api/package.json", import.meta.url)));
  run("g++", [
    "-std=c++17", "-O2", "-g", "-fPIC", "-shared", "-Wall", "-Wno-missing-field-initializers",
    "-DNAPI_VERSION=8", "-DNODE_ADDON_API_DISABLE_DEPRECATED", "-DNAPI_CPP_EXCEPTIONS",
    `-I${nodeInclude}`, `-I${napiInclude}`, `-I${path.join(libbpfDir, "usr/include")}`,
    `-I${path.join(root, "bpf")}`, `-I${path.join(root, "bpf/build")}`,
    path.join(here, "addon.cc"), "-o", target + ".tmp",
    libbpfA, "-lelf", "-lz", "-lpthread",
  ]);
  fs.renameSync(target + ".tmp", target);
}

// Without BTF (no skeleton) or without the libbpf source, the addon cannot be built: say so and
// leave the rest of the build alone (the probe reports ENOADDON and offers pcap replay), unless
// WIRESCOPE_REQUIRE_BPF=1 (CI), where it is an error.
const required = process.env.WIRESCOPE_REQUIRE_BPF === "1";
if (!fs.existsSync(skel) && !required) {
  console.error(`native: ${path.relative(root, skel)} missing (BPF not built on this machine): skipping the probe addon`);
  process.exit(0);
}
try {
  buildLibbpf();
} catch (e) {
  // the environment (no deb-src entry, no network): skippable; a compile error below is not
  if (required) throw e;
  console.error(`native: probe addon not built: ${e.message}${e.cause ? ` (${e.cause.message.split("\n")[0]})` : ""}`);
  console.error("native: the probe will report ENOADDON; set WIRESCOPE_REQUIRE_BPF=1 to make this an error");
  process.exit(0);
}
buildAddon();
