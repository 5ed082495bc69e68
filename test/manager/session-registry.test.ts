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

test('a session is used only by the identity that created it: for another its id looks unknown', () => {
  const sessions = new SessionRegistry(1000);
  const session = sessions.arrive(client, 'user:alice');
  assert.equal(sessions.owned(session.id, 'user:mallory'), undefined);
  assert.equal(sessions.remain(session.id, 'user:mallory'), false);
  assert.equal(sessions.depart(session.id, 'user:mallory'), false);
  assert.equal(sessions.owned(session.id, 'user:alice'), session, 'the owner still has it');
  assert.ok(sessions.depart(session.id, 'user:alice'));
});
