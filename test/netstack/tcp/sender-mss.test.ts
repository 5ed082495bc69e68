import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig, type TcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { tcpHeaderLength } from '../../../src/netstack/wire/tcp.js';
import type { TcpRepr } from '../../../src/netstack/wire/reprs.js';
import { SimLink } from './sim-link.js';
import { Endpoint, randomBytes, sha256 } from './transfer-driver.js';

/** TCP option bytes as the wire emits them. */
function optionBytes(seg: TcpRepr): number {
  return tcpHeaderLength(seg.options) - 20;
}

interface Sent {
  seg: TcpRepr;
  /** The GSO size the stack would pass for this segment (effectiveMss read while it is emitted). */
  gso: number;
}

/** Both sides send 4 MiB over a reordering, lossy link (so each holds out-of-order data and puts SACK blocks
 *  on its data segments); returns A's segments. */
function exchange(configA: Partial<TcpConfig>, configB: Partial<TcpConfig>): Sent[] {
  const link = new SimLink({ seed: 1, delayMs: 5, loss: 0.01, reorder: 0.1, reorderDelayMs: 8 });
  link.a = TcpConnection.connect(40000, 80, 1234, 0, tcpConfig({ timeWaitMs: 1000, ...configA }));
  link.listener = { config: tcpConfig({ timeWaitMs: 1000, ...configB }), iss: 99, autoAccept: true };
  const sent: Sent[] = [];
  link.dropIf = (seg, fromA) => {
    if (fromA && link.a !== null) sent.push({ seg, gso: link.a.effectiveMss });
    return false;
  };
  const size = 4 << 20;
  const a = new Endpoint(link.a, randomBytes(size, 1));
  let b: Endpoint | null = null;
  link.onStep = () => {
    if (b === null && link.b !== null) b = new Endpoint(link.b, randomBytes(size, 2));
    a.pump();
    b?.pump();
  };
  assert.ok(link.run(() => a.closedReason !== null && b?.closedReason != null, 600_000), 'transfer finished');
  assert.equal(sha256(a.data()), sha256(randomBytes(size, 2)));
  assert.ok(sent.some((s) => s.seg.payload.length > 0 && s.seg.options.sack !== undefined), 'data segments carried SACK blocks');
  return sent;
}

for (const peerMss of [1460, 1200]) {
  test(`RFC 9293 §3.7.1 / RFC 6691: without offload, payload plus options never exceed min(MSS) (peer MSS ${peerMss})`, () => {
    const sent = exchange({ mss: 1460, sendSegmentMax: 1460 }, { mss: peerMss, sendSegmentMax: peerMss });
    let full = 0;
    for (const { seg } of sent) {
      if (seg.payload.length === 0) continue;
      const size = seg.payload.length + optionBytes(seg);
      assert.ok(size <= peerMss, `segment of ${seg.payload.length} bytes with ${optionBytes(seg)} option bytes exceeds ${peerMss}`);
      if (size === peerMss) full++;
    }
    assert.ok(full > 100, `full-sized segments: ${full}`);
  });
}

test('RFC 6691 with offload: the GSO size is the MSS less the options each segment carries (SACK included)', () => {
  const sent = exchange({ mss: 1460, sendSegmentMax: 65000 }, { mss: 1400, sendSegmentMax: 65000 });
  let segmented = 0;
  for (const { seg, gso } of sent) {
    if (seg.payload.length === 0) continue;
    assert.equal(gso + optionBytes(seg), 1400, `GSO size ${gso} with ${optionBytes(seg)} option bytes`);
    if (seg.payload.length > gso) segmented++;
  }
  assert.ok(segmented > 10, `offloaded segments: ${segmented}`);
});
