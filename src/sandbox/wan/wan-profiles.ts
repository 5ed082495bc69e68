// The WAN profiles the bench measures over (issue 11): a good remote link, a long lossy one, and a near lossy one.
// The queue holds one RTT of sending time (at least 10 ms), the classic bandwidth-delay-product buffer.
import type { WanProfile } from './link-shaper.js';

export const WAN_PROFILES: readonly WanProfile[] = [
  { id: 'wan20', rttMs: 20, rateMbit: 1000, lossPercent: 0, queueMs: 20 },
  { id: 'wan80loss', rttMs: 80, rateMbit: 200, lossPercent: 0.5, queueMs: 80 },
  { id: 'wan5loss', rttMs: 5, rateMbit: 1000, lossPercent: 1, queueMs: 10 },
];
