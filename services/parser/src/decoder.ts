// What the connection table needs from the plugin host: one session per connection that detects
// the protocol and decodes both directions. wasm-plugins.ts's PluginSet implements it over
// @wirescope/plugin-host (ConnectionEngine); tests may implement it over any real
// decoder. A step's result and the direction numbers are the plugin host's (`StepResult`, `Dir`
// in its engine.ts).
import type { Dir, StepResult } from "@wirescope/plugin-host";

export interface DecoderSession {
  /**
   * Once decoding: true when the host found the caller's dir 0 to be the server's bytes, and
   * whether content decided it ("content"), the caller knew ("given"), or both hypotheses fit
   * equally and the caller's was kept ("guessed"). Hosts that cannot tell leave it undefined.
   */
  readonly flipped?: boolean;
  readonly orientation?: "given" | "content" | "guessed";
  data(dir: Dir, bytes: Uint8Array, tsNs: bigint): StepResult;
  gap(dir: Dir, len: number, tsNs: bigint): StepResult;
  close(tsNs: bigint): StepResult;
  /** Forget the connection without flushing (moved partition, limits). */
  free(): void;
  /** Report what the decoder counted on the connection so far (errors, drops) into the host's counters. */
  reportCounters?(): void;
}

export interface DecoderHost {
  /**
   * `roleKnown` false: the host may try both direction hypotheses while detecting.
   * `midstream`: the connection's start was not seen; the decoder searches for the next message.
   */
  open(hint: { roleKnown: boolean; serverPort: number; midstream?: boolean }): DecoderSession;
  /**
   * Optional: steps of many sessions handed to the decoders together (the plugin host's
   * ConnectionEngine.batch: one ABI v2 feed_batch call per plugin instance). With `eager`, a
   * step that runs at once (a session still detecting, a version 1 plugin) has its result
   * handed to `onResult` at once, the others at flush(); a session's results come in the order
   * of its steps, each what the step alone would have given.
   */
  batch?<T>(onResult: (tag: T, r: StepResult) => void, opts: { eager: boolean }): DecoderBatch<T>;
}

/** Steps of many sessions run together (DecoderHost.batch). */
export interface DecoderBatch<T> {
  data(s: DecoderSession, dir: Dir, bytes: Uint8Array, tsNs: bigint, tag: T): void;
  gap(s: DecoderSession, dir: Dir, len: number, tsNs: bigint, tag: T): void;
  /** The session's close (DecoderSession.close), after its earlier steps. */
  close(s: DecoderSession, tsNs: bigint, tag: T): void;
  /** Runs every step held back and hands out their results. */
  flush(): void;
}
