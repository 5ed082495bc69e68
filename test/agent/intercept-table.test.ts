import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AgentPortConfig } from '../../src/agent/agent-contract.js';
import { InterceptTable } from '../../src/agent/intercept-table.js';
import { matchRequest } from '../../src/agent/http/http-filter.js';
import { intercept } from './manager-double.js';

const HTTP: AgentPortConfig = { agentPort: 9900, containerPort: 8080, name: 'http', protocol: 'TCP', takeover: 'named-port' };
const DNS: AgentPortConfig = { agentPort: 9901, containerPort: 53, name: '', protocol: 'UDP', takeover: 'init-container' };

describe('intercept table', () => {
  test('personal and wiretap intercepts of a port are given to the HTTP router, filters compiled', () => {
    const table = new InterceptTable([HTTP, DNS]);
    const rejected = table.apply([
      intercept({ id: 'p1', mode: 'personal', containerPort: 8080, protocol: 'TCP', http: { headers: [{ name: 'X-User', value: 'alice' }] } }),
      intercept({ id: 'w1', mode: 'wiretap', containerPort: 8080 }),
    ]);
    assert.deepEqual(rejected, []);
    const port = table.forPort(9900);
    assert.equal(port.whole, undefined);
    assert.deepEqual(port.wiretaps, ['w1']);
    assert.deepEqual(port.personal.map((r) => r.id), ['p1']);
    assert.equal(matchRequest(port.personal[0]!.filter, { path: '/', headers: [['x-user', 'alice']] }), true);
    assert.equal(matchRequest(port.personal[0]!.filter, { path: '/', headers: [['x-user', 'bob']] }), false);
    assert.deepEqual(table.forPort(9901), { whole: undefined, personal: [], wiretaps: [] });
  });

  test('a global intercept applies to its port and protocol only; a replace without a port to every port', () => {
    const table = new InterceptTable([HTTP, DNS]);
    table.apply([intercept({ id: 'g', mode: 'global', containerPort: 8080, protocol: 'UDP' })]);
    assert.equal(table.forPort(9900).whole, undefined);
    table.apply([intercept({ id: 'g', mode: 'global', containerPort: 53, protocol: 'udp' })]);
    assert.equal(table.forPort(9901).whole, 'g');
    assert.equal(table.forPort(9900).whole, undefined);
    table.apply([intercept({ id: 'r', mode: 'replace' })]);
    assert.equal(table.forPort(9900).whole, 'r');
    assert.equal(table.forPort(9901).whole, 'r');
  });

  test('each directive replaces the whole list; clear() drops everything', () => {
    const table = new InterceptTable([HTTP]);
    table.apply([intercept({ id: 'b', mode: 'global', containerPort: 8080 }), intercept({ id: 'a', mode: 'wiretap', containerPort: 8080 })]);
    assert.deepEqual(table.interceptIds, ['a', 'b']);
    table.apply([intercept({ id: 'a', mode: 'wiretap', containerPort: 8080 })]);
    assert.equal(table.forPort(9900).whole, undefined);
    assert.deepEqual(table.interceptIds, ['a']);
    table.clear();
    assert.deepEqual(table.forPort(9900).wiretaps, []);
    assert.deepEqual(table.interceptIds, []);
  });

  test('an unknown mode or a bad filter is reported and not applied; the others still are', () => {
    const table = new InterceptTable([HTTP]);
    const rejected = table.apply([
      intercept({ id: 'bad-regex', mode: 'personal', containerPort: 8080, http: { pathRegex: '(' } }),
      intercept({ id: 'no-filter', mode: 'personal', containerPort: 8080 }),
      intercept({ id: 'odd', mode: 'mirror-all', containerPort: 8080 }),
      intercept({ id: 'ok', mode: 'personal', containerPort: 8080, http: { pathPrefix: '/api' } }),
    ]);
    assert.deepEqual(rejected.map((r) => r.id).sort(), ['bad-regex', 'no-filter', 'odd']);
    assert.match(rejected.find((r) => r.id === 'odd')!.reason, /unknown mode "mirror-all"/);
    assert.deepEqual(table.forPort(9900).personal.map((r) => r.id), ['ok']);
    assert.equal(table.forPort(9900).whole, undefined);
  });
});
