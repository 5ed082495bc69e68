// The initial congestion window, shared by every congestion control algorithm. It lives apart from
// tcp-congestion.ts, which imports the algorithms, so that they need not import it back.

/** RFC 6928 initial window. */
export function initialWindow(mss: number): number {
  return Math.min(10 * mss, Math.max(2 * mss, 14600));
}
