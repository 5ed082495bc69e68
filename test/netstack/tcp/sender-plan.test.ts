import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TcpConnection } from '../../../src/netstack/tcp/tcp-connection.js';
import { tcpConfig } from '../../../src/netstack/tcp/tcp-config.js';
import { SimLink } from './sim-link.js';
import { Endpoint, randomBytes } from './transfer-driver.js';

/** A lossy, reordering transfer both ways; `extraPolls` more pollAt() calls on each side after every round. */
function run(sack: boolean, extraPolls: number): string[] {
  const link = new SimLink({ seed: 21, delayMs: 5, loss: 0.03, reorder: 0.1, reorderDelayMs: 8, duplicate: 0.02 });
  link.recording = true;
  const config = tcpConfig({ sack, timeWaitMs: 1000 });
  link.a = TcpConnection.connect(40000, 80, 77, 0, config);
  link.listener = { config, iss: 88, autoAccept: true };
  const a = new Endpoint(link.a, randomBytes(300_000, 1));
  let b: Endpoint | null = null;
  link.onStep = () => {
    if (b === null && link.b !== null) b = new Endpoint(link.b, randomBytes(300_000, 2));
    a.pump();
    b?.pump();
    for (let i = 0; i < extraPolls; i++) {
      link.a?.pollAt();
      link.b?.pollAt();
    }
  };
  assert.ok(link.run(() => a.closedReason !== null && b?.closedReason != null, 600_000));
  return link.log.map((l) => `${l.t} ${l.fromA} ${l.seg.flags} ${l.seg.seq} ${l.seg.ack} ${l.seg.payload.length} ${l.seg.window}`);
}

for (const sack of [true, false]) {
  test(`planSend and pollAt change nothing: extra pollAt calls leave every segment the same (SACK ${sack ? 'on' : 'off'})`, () => {
    assert.deepEqual(run(sack, 3), run(sack, 0));
  });
}
