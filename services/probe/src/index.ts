// Public surface of @wirescope/probe.
export { createService } from "./service.js";
export { EbpfSource, type EbpfSourceOptions } from "./ebpf-source.js";
export { PcapSource, type PcapSourceOptions } from "./pcap-source.js";
export { NativeProbe, ProbeError, type NativeOptions, type NativeStats } from "./native.js";
export { decodeBatch } from "./decode.js";
export type { ConnRecord, DataRecord, EventBatch } from "./events.js";
export type { EventSource, SourceStats } from "./source.js";
export { ProcessCache, readProcInfo, containerIdFromCgroup, type ProcInfo } from "./process-info.js";
export { RawEncoder, monoToWallClock, type EncodedBatch, type RawEncoderOptions } from "./raw-encoder.js";
export { copyPolicyBytes, type CopyPolicy } from "./copy-policy.js";
export { KernelFilter, type FilterSpec, EMPTY_FILTER } from "./filter.js";
export { parseProbeArgs, PROBE_FLAGS, type ProbeOptions } from "./options.js";
