/** Start (ms since the epoch) of the window holding `ms`. */
export function windowStart(ms: number, windowMs: number): number {
  return Math.floor(ms / windowMs) * windowMs;
}
