// From a captured frame to a TCP segment: link layer, IPv4/IPv6, TCP header. Nothing is
// allocated: the result is written into a caller-owned TcpSegment that points into the frame.
import type { CapturePacket } from "./reader.js";

/** LINKTYPE_* values (https://www.tcpdump.org/linktypes.html) this module reads. */
export const LinkType = {
  NULL: 0, // BSD loopback: 4-byte address family in the capturing host's byte order
  ETHERNET: 1,
  RAW_ALT12: 12, // DLT_RAW on some BSDs, found in old files
  RAW_ALT14: 14, // DLT_RAW on OpenBSD
  RAW: 101,
  LOOP: 108, // OpenBSD loopback: address family in network byte order
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

/** Link types {@link decodeTcp} understands. */
export const supportedLinkTypes: readonly number[] = Object.values(LinkType);

/** A TCP segment inside a captured frame (offsets into `buf`). */
export interface TcpSegment {
  buf: Buffer;
  family: 4 | 6;
  /** Offsets of the source and destination addresses (4 or 16 bytes). */
  srcOff: number;
  dstOff: number;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  payloadOff: number;
  /** Payload bytes present in the capture. */
  payloadLen: number;
  /** Payload bytes the segment carried on the wire but the capture cut (snap length). */
  payloadMissing: number;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

/** What decodeTcp made of a frame. Everything but OK is a counted skip. */
export const Verdict = {
  OK: 0,
  NOT_IP: 1, // ARP, LLDP, ... or an unknown address family
  NOT_TCP: 2, // UDP, ICMP, ...
  FRAGMENT: 3, // IP fragments are counted and skipped
  MALFORMED: 4, // header values that cannot be
  TRUNCATED: 5, // the capture cut a header
  UNSUPPORTED_LINK: 6,
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];
export const verdictNames = ["ok", "not_ip", "not_tcp", "ip_fragment", "malformed", "truncated_header", "unsupported_link"] as const;

export function newTcpSegment(): TcpSegment {
  return { buf: Buffer.alloc(0), family: 4, srcOff: 0, dstOff: 0, sport: 0, dport: 0, seq: 0, ack: 0, flags: 0, payloadOff: 0, payloadLen: 0, payloadMissing: 0 };
}

/** Decodes one frame into `out`; returns a {@link Verdict}. */
export function decodeTcp(pkt: CapturePacket, out: TcpSegment): Verdict {
  const buf = pkt.buf;
  const start = pkt.offset;
  const capEnd = start + pkt.capLen;
  let off = start;
  let version = 0;
  switch (pkt.linkType) {
    case LinkType.ETHERNET: {
      if (pkt.capLen < 14) return Verdict.TRUNCATED;
      let et = buf.readUInt16BE(start + 12);
      off = start + 14;
      // 802.1Q / 802.1ad / old QinQ tags, possibly stacked.
      for (let i = 0; i < 4 && (et === 0x8100 || et === 0x88a8 || et === 0x9100); i++) {
        if (off + 4 > capEnd) return Verdict.TRUNCATED;
        et = buf.readUInt16BE(off + 2);
        off += 4;
      }
      version = et === 0x0800 ? 4 : et === 0x86dd ? 6 : 0;
      break;
    }
    case LinkType.LINUX_SLL: {
      if (pkt.capLen < 16) return Verdict.TRUNCATED;
      const et = buf.readUInt16BE(start + 14);
      off = start + 16;
      version = et === 0x0800 ? 4 : et === 0x86dd ? 6 : 0;
      break;
    }
    case LinkType.LINUX_SLL2: {
      if (pkt.capLen < 20) return Verdict.TRUNCATED;
      const et = buf.readUInt16BE(start);
      off = start + 20;
      version = et === 0x0800 ? 4 : et === 0x86dd ? 6 : 0;
      break;
    }
    case LinkType.NULL:
    case LinkType.LOOP:
      // The family value differs between systems (AF_INET6 is 10, 24, 28 or 30) and, for NULL,
      // its byte order is the capturing host's: the IP version nibble is the reliable signal.
      off = start + 4;
      if (off >= capEnd) return Verdict.TRUNCATED;
      version = buf[off]! >> 4;
      break;
    case LinkType.RAW:
    case LinkType.RAW_ALT12:
    case LinkType.RAW_ALT14:
      if (off >= capEnd) return Verdict.TRUNCATED;
      version = buf[off]! >> 4;
      break;
    case LinkType.IPV4:
      version = 4;
      break;
    case LinkType.IPV6:
      version = 6;
      break;
    default:
      return Verdict.UNSUPPORTED_LINK;
  }

  let l4: number;
  let l4End: number;
  if (version === 4) {
    if (off + 20 > capEnd) return Verdict.TRUNCATED;
    if (buf[off]! >> 4 !== 4) return Verdict.MALFORMED;
    const ihl = (buf[off]! & 0x0f) * 4;
    if (ihl < 20) return Verdict.MALFORMED;
    let total = buf.readUInt16BE(off + 2);
    // 0 happens for TSO/BIG TCP frames captured before segmentation: the frame is the packet.
    if (total === 0) total = pkt.origLen - (off - start);
    if (total < ihl) return Verdict.MALFORMED;
    if ((buf.readUInt16BE(off + 6) & 0x3fff) !== 0) return Verdict.FRAGMENT;
    if (buf[off + 9] !== 6) return Verdict.NOT_TCP;
    if (off + ihl > capEnd) return Verdict.TRUNCATED;
    out.family = 4;
    out.srcOff = off + 12;
    out.dstOff = off + 16;
    l4 = off + ihl;
    l4End = off + total;
  } else if (version === 6) {
    if (off + 40 > capEnd) return Verdict.TRUNCATED;
    if (buf[off]! >> 4 !== 6) return Verdict.MALFORMED;
    const plen = buf.readUInt16BE(off + 4);
    let nh = buf[off + 6]!;
    out.family = 6;
    out.srcOff = off + 8;
    out.dstOff = off + 24;
    l4 = off + 40;
    l4End = plen === 0 ? start + pkt.origLen : l4 + plen;
    for (let i = 0; nh !== 6; i++) {
      if (i === 8) return Verdict.MALFORMED;
      switch (nh) {
        case 0: // hop-by-hop
        case 43: // routing
        case 60: // destination options
        case 135: // mobility
        case 139: // HIP
        case 140: // shim6
          if (l4 + 2 > capEnd) return Verdict.TRUNCATED;
          nh = buf[l4]!;
          l4 += (buf[l4 + 1]! + 1) * 8;
          break;
        case 51: // AH
          if (l4 + 2 > capEnd) return Verdict.TRUNCATED;
          nh = buf[l4]!;
          l4 += (buf[l4 + 1]! + 2) * 4;
          break;
        case 44: {
          // fragment header: only an atomic fragment (offset 0, no more fragments) is whole
          if (l4 + 8 > capEnd) return Verdict.TRUNCATED;
          if ((buf.readUInt16BE(l4 + 2) & 0xfff9) !== 0) return Verdict.FRAGMENT;
          nh = buf[l4]!;
          l4 += 8;
          break;
        }
        default:
          return Verdict.NOT_TCP;
      }
      if (l4 > l4End) return Verdict.MALFORMED;
    }
  } else {
    return version === 0 ? Verdict.NOT_IP : Verdict.MALFORMED;
  }

  if (l4 + 20 > capEnd) return Verdict.TRUNCATED;
  const dataOff = (buf[l4 + 12]! >> 4) * 4;
  if (dataOff < 20 || l4 + dataOff > l4End) return Verdict.MALFORMED;
  const payloadOff = l4 + dataOff;
  if (payloadOff > capEnd) return Verdict.TRUNCATED;
  const wire = l4End - payloadOff;
  // Ethernet pads short frames: the IP length, not the frame, says where the payload ends.
  const present = Math.min(wire, capEnd - payloadOff);
  out.buf = buf;
  out.sport = buf.readUInt16BE(l4);
  out.dport = buf.readUInt16BE(l4 + 2);
  out.seq = buf.readUInt32BE(l4 + 4);
  out.ack = buf.readUInt32BE(l4 + 8);
  out.flags = buf[l4 + 13]!;
  out.payloadOff = payloadOff;
  out.payloadLen = present;
  out.payloadMissing = wire - present;
  return Verdict.OK;
}

