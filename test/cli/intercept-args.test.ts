// The intercept commands' options: the port spec, the HTTP filter, the mode each command means, the wait, and
// running `-- CMD` with the intercept's environment.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { interceptRequest, parsePortSpec, UsageError } from '../../src/cli/intercept-args.js';
import { runWithEnvironment } from '../../src/cli/intercept-commands.js';

const usage = (pattern: RegExp) => (error: unknown) => error instanceof UsageError && pattern.test(error.message);

test('port spec: LOCAL, LOCAL:NUMBER, LOCAL:NAME; anything else is refused with the form to use', () => {
  assert.deepEqual(parsePortSpec('8080'), { localPort: 8080, servicePort: '' });
  assert.deepEqual(parsePortSpec('8080:80'), { localPort: 8080, servicePort: '80' });
  assert.deepEqual(parsePortSpec('3000:http-alt'), { localPort: 3000, servicePort: 'http-alt' });
  for (const bad of ['', 'x', '0', '65536', '8080:', '8080:0', '8080:70000', '8080:Http', '8080:-a', ':80', '80:80:80']) {
    assert.throws(() => parsePortSpec(bad), usage(/--port LOCAL\[:SERVICEPORT\]|is not from 1 to 65535/), bad);
  }
});

test('mode: intercept is global without --http-*, personal with one; wiretap keeps its filter; replace refuses filters', () => {
  const global = interceptRequest('intercept', 'echo', { port: '8080' });
  assert.equal(global.mode, 'global');
  assert.equal(global.http, undefined);
  assert.equal(global.localPort, 8080);
  const personal = interceptRequest('intercept', 'echo', {
    port: '8080:http',
    httpHeader: ['x-dev=alice'],
    httpHeaderRegex: ['x-team=a(b|c)'],
    httpPathPrefix: '/api',
    namespace: 'shop',
    service: 'echo-svc',
    kind: 'statefulset',
    wait: '90',
  });
  assert.equal(personal.mode, 'personal');
  assert.deepEqual(
    personal.http?.headers.map((h) => [h.name, h.value, h.regex]),
    [
      ['x-dev', 'alice', false],
      ['x-team', 'a(b|c)', true],
    ],
  );
  assert.equal(personal.http?.pathPrefix, '/api');
  assert.equal(personal.servicePort, 'http');
  assert.equal(personal.namespace, 'shop');
  assert.equal(personal.service, 'echo-svc');
  assert.equal(personal.kind, 'StatefulSet');
  assert.equal(personal.waitSeconds, 90);
  assert.equal(interceptRequest('wiretap', 'echo', { port: '8080', httpPathEqual: '/x' }).http?.pathEqual, '/x');
  assert.equal(interceptRequest('wiretap', 'echo', { port: '8080' }).mode, 'wiretap');
  assert.equal(interceptRequest('replace', 'echo', { port: '8080' }).mode, 'replace');
  assert.throws(() => interceptRequest('replace', 'echo', { port: '8080', httpHeader: ['a=b'] }), usage(/replace takes all the traffic/));
});

test('filters and options: each bad one is named', () => {
  const bad = (opts: object, pattern: RegExp) => assert.throws(() => interceptRequest('intercept', 'echo', { port: '8080', ...opts }), usage(pattern));
  bad({ httpHeader: ['novalue'] }, /--http-header novalue: write NAME=VALUE/);
  bad({ httpHeaderRegex: ['=x'] }, /--http-header-regex =x: write NAME=REGEX/);
  bad({ httpHeader: ['bad name=x'] }, /is not a header name/);
  bad({ httpHeaderRegex: ['x-a=(('] }, /not a regular expression/);
  bad({ httpPathPrefix: '/a', httpPathEqual: '/b' }, /at most one of --http-path-prefix/);
  bad({ httpPathPrefix: 'api' }, /must start with \//);
  bad({ httpPathEqual: '' }, /needs a path/);
  bad({ kind: 'Job' }, /--kind Job: one of Deployment, StatefulSet, ReplicaSet/);
  bad({ wait: '0' }, /--wait 0: whole seconds from 1 to 600/);
  bad({ wait: '601' }, /--wait 601/);
  bad({ wait: '1.5' }, /--wait 1.5/);
});

test('-- CMD: runs with the environment added; its exit code, 128+signal, or 127 when there is no such command', async () => {
  assert.equal(await runWithEnvironment(['sh', '-c', 'test "$KT_SECRET" = "a b\nc" && test -n "$PATH"'], { KT_SECRET: 'a b\nc' }), 0);
  assert.equal(await runWithEnvironment(['sh', '-c', 'exit 3'], {}), 3);
  assert.equal(await runWithEnvironment(['sh', '-c', 'kill -TERM $$'], {}), 143);
  assert.equal(await runWithEnvironment(['kubetun-no-such-command-here'], {}), 127);
});
