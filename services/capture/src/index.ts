// Capture files: reading pcap/pcapng, decoding frames down to TCP, reassembling streams, and
// writing synthesized pcapng.
export * from "./errors.js";
export * from "./reader.js";
export * from "./packet.js";
export * from "./reassembly.js";
export * from "./capture-streams.js";
export * from "./pcapng-writer.js";
