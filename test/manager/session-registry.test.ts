import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SessionRegistry, type SessionEndReason } from '../../src/manager/session-registry.js';

const client = { name: 'n', namespace: 'default', hostname: 'h', version: 'v' };

test('sessions live while kept alive within the TTL and expire after it (fake clock)', () => {
  let now = 1000;
  const sessions = new SessionRegistry(100, () => now);
  const kept = sessions.arrive(client, 'alice');
  const idle = sessions.arrive(client, 'alice');
  const ended: [string, SessionEndReason][] = [];
  sessions.on('ended', (s, reason) => ended.push([s.id, reason]));
  now += 60;
  assert.ok(sessions.remain(kept.id, 'alice'));
  now += 60;
  assert.equal(sessions.get(idle.id), undefined);
  assert.ok(sessions.get(kept.id));
  assert.deepEqual(ended, [[idle.id, 'expired']]);
  now += 100;
  sessions.sweep();
  assert.equal(sessions.size, 0);
  assert.equal(sessions.remain(kept.id, 'alice'), false);
});

test('end hooks run once on depart and can be removed', () => {
  const sessions = new SessionRegistry(1000);
  const session = sessions.arrive(client, 'alice');
  const calls: SessionEndReason[] = [];
  session.onEnd((reason) => calls.push(reason));
  const remove = session.onEnd(() => assert.fail('removed hook ran'));
  remove();
  assert.ok(sessions.depart(session.id, 'alice'));
  assert.equal(sessions.depart(session.id, 'alice'), false);
  assert.deepEqual(calls, ['departed']);
  const late: SessionEndReason[] = [];
  session.onEnd((reason) => late.push(reason));
  assert.deepEqual(late, ['departed'], 'a hook added after the end runs at once');
});

const few = {
  sessions: 3,
  sessionsPerConnection: 2,
  tcpFlowsPerSession: 1,
  udpFlowsPerSession: 1,
  dnsQueriesPerSession: 1,
  watchesPerSession: 1,
};

test('sessions are capped in all and per connection; an ended or expired one frees its place', () => {
  let now = 0;
  const sessions = new SessionRegistry(100, () => now, few);
  const a = {};
  const b = {};
  const first = sessions.arrive(client, 'alice', a);
  sessions.arrive(client, 'alice', a);
  assert.throws(() => sessions.arrive(client, 'alice', a), { name: 'LimitError', message: /limit of 2 sessions: depart/ });
  sessions.arrive(client, 'alice', b);
  assert.throws(() => sessions.arrive(client, 'alice', b), { name: 'LimitError', message: /holds its limit of 3 sessions/ });
  assert.ok(sessions.depart(first.id, 'alice'));
  sessions.arrive(client, 'alice', a);
  now += 200;
  assert.equal(sessions.arrive(client, 'alice', a).connection, a, 'expired sessions no longer count');
  assert.equal(sessions.size, 1);
});

test('each session has its own allowances, and a tag for logs that is not its id', () => {
  const sessions = new SessionRegistry(1000, Date.now, few);
  const one = sessions.arrive(client, 'alice');
  const two = sessions.arrive(client, 'alice');
  one.allowances.tcpFlows.take();
  assert.equal(one.allowances.tcpFlows.full, true);
  assert.equal(two.allowances.tcpFlows.full, false);
  assert.match(one.tag, /^#[0-9]+$/);
  assert.notEqual(one.tag, two.tag);
});

test('a session is used only by the identity that created it: for another its id looks unknown', () => {
  const sessions = new SessionRegistry(1000);
  const session = sessions.arrive(client, 'user:alice');
  assert.equal(sessions.owned(session.id, 'user:mallory'), undefined);
  assert.equal(sessions.remain(session.id, 'user:mallory'), false);
  assert.equal(sessions.depart(session.id, 'user:mallory'), false);
  assert.equal(sessions.owned(session.id, 'user:alice'), session, 'the owner still has it');
  assert.ok(sessions.depart(session.id, 'user:alice'));
});
