/** Why a capture could not be read. */
export type CaptureErrorCode =
  | "not-capture" // the file does not start with a pcap or pcapng magic number
  | "truncated" // the file ends inside a header that is needed to go on
  | "corrupt" // a header holds values no capture can have
  | "unsupported" // a valid capture in a variant we do not read
  | "io"; // the operating system refused to read or write

/**
 * The one error class at the capture-file boundary. `message` is a single line meant for users
 * ("x.txt: not a pcap or pcapng capture (starts with 0x48545450)").
 */
export class CaptureError extends Error {
  override readonly name = "CaptureError";
  constructor(
    readonly code: CaptureErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
