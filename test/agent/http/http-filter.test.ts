import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { HttpFilterSchema } from '../../../src/gen/kubetun/manager/v1/manager_pb.js';
import { HttpFilterError, compileFilter, describeFilter, filtersOverlap, isPersonal, matchRequest, type RequestHead } from '../../../src/agent/http/http-filter.js';

// Small alphabets so generated filters and requests meet often: disjointness claims get tested for real.
const names = fc.constantFrom('x-dev', 'x-user');
const values = fc.constantFrom('alice', 'bob', 'al', '');
const regexes = fc.constantFrom('al.*', 'bob|alice', '.*', 'a+');
const paths = fc.constantFrom('/', '/api', '/api/v1', '/api/v1/x', '/apix', '/b');

const filter = fc
  .record({
    headers: fc.array(fc.oneof(fc.record({ name: names, value: values, regex: fc.constant(false) }), fc.record({ name: names, value: regexes, regex: fc.constant(true) })), { maxLength: 2 }),
    path: fc.oneof(
      fc.constant({}),
      paths.map((p) => ({ pathPrefix: p })),
      paths.map((p) => ({ pathEqual: p })),
      fc.constantFrom('/api.*', '/b|/api', '/a.*x').map((p) => ({ pathRegex: p })),
    ),
  })
  .map(({ headers, path }) => create(HttpFilterSchema, { headers, ...path }));

const requestHead: fc.Arbitrary<RequestHead> = fc.record({
  path: fc.tuple(paths, fc.constantFrom('', '?q=1', '/more', '?/api')).map(([p, s]) => p + s),
  headers: fc.array(fc.tuple(names, values), { maxLength: 4 }),
});

test('property: filters reported disjoint never both match one request', () => {
  fc.assert(
    fc.property(filter, filter, fc.array(requestHead, { minLength: 1, maxLength: 20 }), (a, b, requests) => {
      const ca = compileFilter(a);
      const cb = compileFilter(b);
      assert.equal(filtersOverlap(ca, cb), filtersOverlap(cb, ca), 'overlap is symmetric');
      if (filtersOverlap(ca, cb)) return;
      for (const r of requests) assert.ok(!(matchRequest(ca, r) && matchRequest(cb, r)), `${describeFilter(a)} and ${describeFilter(b)} both match ${JSON.stringify(r)}`);
    }),
    { numRuns: 2000 },
  );
});

test('property: an exact filter matches the request it describes, and overlaps itself', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.tuple(names, values), { maxLength: 3, selector: ([name]) => name }), paths, fc.constantFrom('', '?x=1'), (headers, path, query) => {
      const f = create(HttpFilterSchema, { headers: headers.map(([name, value]) => ({ name, value })), pathEqual: path });
      const compiled = compileFilter(f);
      assert.ok(matchRequest(compiled, { path: path + query, headers }));
      assert.ok(filtersOverlap(compiled, compiled));
    }),
  );
});

test('a repeated header is matched as one combined value (two exact filters can never both match)', () => {
  const alice = compileFilter(create(HttpFilterSchema, { headers: [{ name: 'x-dev', value: 'alice' }] }));
  const al = compileFilter(create(HttpFilterSchema, { headers: [{ name: 'x-dev', value: 'al' }] }));
  const both: RequestHead = { path: '/', headers: [['x-dev', 'al'], ['x-dev', 'alice']] };
  assert.ok(!filtersOverlap(alice, al));
  assert.ok(!matchRequest(alice, both) && !matchRequest(al, both));
  const combined = compileFilter(create(HttpFilterSchema, { headers: [{ name: 'x-dev', value: 'al, alice' }] }));
  assert.ok(matchRequest(combined, both));
});

test('matching: header names compare lower-cased, regexes are anchored, the query is not part of the path', () => {
  const f = compileFilter(create(HttpFilterSchema, { headers: [{ name: 'X-Dev', value: 'ali.e', regex: true }], pathPrefix: '/api' }));
  assert.ok(matchRequest(f, { path: '/api/x?y', headers: [['x-dev', 'alice']] }));
  assert.ok(!matchRequest(f, { path: '/api/x', headers: [['x-dev', 'malice']] }), 'anchored');
  assert.ok(!matchRequest(f, { path: '/b?/api', headers: [['x-dev', 'alice']] }), 'the query is not the path');
  assert.ok(!matchRequest(f, { path: '/api', headers: [] }));
});

test('bad filters are refused with the part named', () => {
  const bad: [MessageInitShape<typeof HttpFilterSchema>, RegExp][] = [
    [{ headers: [{ name: 'x dev', value: 'a' }] }, /not a header name/],
    [{ pathPrefix: '/a', pathEqual: '/b' }, /at most one/],
    [{ pathRegex: '(' }, /not a regular expression/],
    [{ pathPrefix: 'api' }, /must start with \//],
    [{ headers: [{ name: 'x', value: 'a\r\nb' }] }, /line breaks/],
  ];
  for (const [fields, message] of bad) {
    assert.throws(() => compileFilter(create(HttpFilterSchema, fields)), (e: unknown) => e instanceof HttpFilterError && message.test(e.message));
  }
});

test('describeFilter and isPersonal', () => {
  assert.equal(describeFilter(undefined), 'all requests');
  assert.ok(!isPersonal(create(HttpFilterSchema, {})));
  const f = create(HttpFilterSchema, { headers: [{ name: 'x-dev', value: 'alice' }, { name: 'x-u', value: 'b.*', regex: true }], pathPrefix: '/api' });
  assert.ok(isPersonal(f));
  assert.equal(describeFilter(f), 'x-dev=alice, x-u~/b.*/, path /api*');
});
