// One direction of an emulated WAN link, without I/O: for each packet arriving at a time, when it leaves the far
// end, or that it is lost. The model is a bottleneck router: random loss on arrival (as netem's `loss`), a
// drop-tail queue bounded in time, serialization at the link's rate, then the one-way propagation delay.

/** What the link between the workstation and the cluster looks like; every figure applies to each direction. */
export interface WanProfile {
  /** Names the profile in results (`wan20`). */
  id: string;
  /** Round-trip propagation delay; each direction delays by half. */
  rttMs: number;
  /** The bottleneck's rate; 0 means unlimited. */
  rateMbit: number;
  /** Independent random loss of each MTU-sized segment. */
  lossPercent: number;
  /** The bottleneck queue holds at most this much sending time; arrivals beyond it are dropped. */
  queueMs: number;
}

export function validateProfile(p: WanProfile): void {
  const bad = (what: string): never => {
    throw new Error(`WAN profile "${p.id}": ${what}`);
  };
  if (!/^[a-z][a-z0-9_-]*$/.test(p.id)) bad('its id must be lower-case letters, digits, "-" or "_"');
  if (!(p.rttMs >= 0 && p.rttMs <= 10_000)) bad(`rttMs ${p.rttMs} is not within 0–10000`);
  if (!(p.rateMbit >= 0 && p.rateMbit <= 100_000)) bad(`rateMbit ${p.rateMbit} is not within 0–100000 (0: unlimited)`);
  if (!(p.lossPercent >= 0 && p.lossPercent < 100)) bad(`lossPercent ${p.lossPercent} is not within 0–100`);
  if (!(p.queueMs > 0 && p.queueMs <= 10_000)) bad(`queueMs ${p.queueMs} is not within 0–10000`);
}

export interface ShaperStats {
  packets: number;
  segments: number;
  lostSegments: number;
  queueDroppedSegments: number;
  bytes: number;
}

export class LinkShaper {
  /** kept[i] is 1 when segment i of the last admitted packet survives. */
  readonly kept = new Uint8Array(1024);
  readonly stats: ShaperStats = { packets: 0, segments: 0, lostSegments: 0, queueDroppedSegments: 0, bytes: 0 };
  private profile: WanProfile;
  /** When the bottleneck has sent everything it holds (ms, the caller's clock). */
  private busyUntil = 0;

  constructor(
    profile: WanProfile,
    private readonly random: () => number,
  ) {
    validateProfile(profile);
    this.profile = profile;
  }

  /** Takes effect for packets arriving from now on; those already queued keep their times. */
  setProfile(profile: WanProfile): void {
    validateProfile(profile);
    this.profile = profile;
  }

  /**
   * A packet of `segments` MTU-sized segments of `segmentBytes` each (a TSO packet is several) arrives at `now`
   * (ms). Returns when its surviving segments leave the far end, with `kept` saying which survive; NaN when none
   * does. Lost segments take no sending time; the queue limit drops the tail of a packet that does not fit.
   */
  admit(now: number, segments: number, segmentBytes: number): number {
    const { lossPercent, rateMbit, queueMs, rttMs } = this.profile;
    if (segments > this.kept.length) throw new RangeError(`a packet of ${segments} segments is more than the ${this.kept.length} a TSO packet can hold`);
    const loss = lossPercent / 100;
    const sendMs = rateMbit === 0 ? 0 : (segmentBytes * 8) / (rateMbit * 1000);
    let at = Math.max(now, this.busyUntil);
    let survivors = 0;
    this.stats.packets++;
    this.stats.segments += segments;
    for (let i = 0; i < segments; i++) {
      if (loss > 0 && this.random() < loss) {
        this.kept[i] = 0;
        this.stats.lostSegments++;
      } else if (at - now > queueMs) {
        this.kept[i] = 0;
        this.stats.queueDroppedSegments++;
      } else {
        this.kept[i] = 1;
        at += sendMs;
        survivors++;
      }
    }
    this.busyUntil = at;
    this.stats.bytes += survivors * segmentBytes;
    return survivors === 0 ? NaN : at + rttMs / 2;
  }
}
