// InterceptRegistry (the user daemon's intercepts) against a test double of the traffic manager: its control API
// (a scripted Manager service) and its intercept streams on one real node:http2 server, with a real TunnelClient.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { InterceptRequestSchema, LeaveRequestSchema, ListRequestSchema } from '../../src/gen/kubetun/daemon/v1/daemon_pb.js';
import {
  InterceptDialSchema,
  InterceptInfoSchema,
  Manager,
  WorkloadListSchema,
  type InterceptDial,
  type InterceptInfo,
} from '../../src/gen/kubetun/manager/v1/manager_pb.js';
import { silentLogger } from '../../src/log/logger.js';
import { TunnelClient } from '../../src/tunnel/tunnel-client.js';
import { InterceptRegistry, type InterceptSession } from '../../src/userd/intercepts.js';
import { startInterceptDouble, type InterceptStreamDouble } from '../tunnel/intercept-double.js';
import { roundTrip, startTcpEcho } from '../tunnel/tunnel-fixture.js';

/** The scripted manager: how many polls until an intercept is active (Infinity: never), what it refuses. */
class ManagerScript {
  pollsUntilActive = 1;
  refuseCreate: ((sessionId: string, workload: string) => string | undefined) | undefined;
  intercepts = new Map<string, { sessionId: string; info: InterceptInfo; polls: number }>();
  removed: string[] = [];
  listedNamespaces: string[] = [];
  private readonly dials: { queue: InterceptDial[]; waiter: (() => void) | undefined } = { queue: [], waiter: undefined };
  private next = 1;

  announce(dial: InterceptDial): void {
    this.dials.queue.push(dial);
    this.dials.waiter?.();
  }

  routes = (router: ConnectRouter): void => {
    const dials = this.dials;
    router.service(Manager, {
      createIntercept: ({ sessionId, spec }) => {
        const refusal = this.refuseCreate?.(sessionId, spec!.workload);
        if (refusal !== undefined) throw new ConnectError(refusal, Code.AlreadyExists);
        const info = create(InterceptInfoSchema, { id: `i${this.next++}`, spec, client: 'me@laptop', state: 'waiting', pods: ['echo-abc'] });
        this.intercepts.set(info.id, { sessionId, info, polls: 0 });
        return info;
      },
      getIntercept: ({ sessionId, id }) => {
        const held = this.intercepts.get(id);
        if (held === undefined || held.sessionId !== sessionId) throw new ConnectError('no such intercept', Code.NotFound);
        if (++held.polls >= this.pollsUntilActive) held.info = { ...held.info, state: 'active', environment: { SECRET: 's3cr3t' } };
        return held.info;
      },
      removeIntercept: ({ id }) => {
        this.removed.push(id);
        this.intercepts.delete(id);
        return {};
      },
      listIntercepts: ({ id }) => ({ intercepts: [...this.intercepts.values()].filter((h) => h.sessionId === id).map((h) => ({ ...h.info, requests: 7n })) }),
      listWorkloads: ({ namespace }) => {
        this.listedNamespaces.push(namespace);
        return create(WorkloadListSchema);
      },
      watchDials: async function* (this: void, _session, context) {
        for (;;) {
          while (dials.queue.length > 0) yield dials.queue.shift()!;
          await new Promise<void>((resolve) => {
            dials.waiter = resolve;
            context.signal.addEventListener('abort', () => resolve());
          });
          if (context.signal.aborted) return;
        }
      },
    });
  };
}

async function withManager(body: (ctx: { script: ManagerScript; double: InterceptStreamDouble; session: InterceptSession; registry: InterceptRegistry; connected: { on: boolean } }) => Promise<void>): Promise<void> {
  const script = new ManagerScript();
  const double = await startInterceptDouble(200, {}, script.routes);
  const tunnel = await TunnelClient.connect(double.url, { sessionId: 'sess-1', heartbeat: false });
  const session: InterceptSession = { tunnel, sessionId: 'sess-1', namespace: 'team', kube: null };
  const connected = { on: true };
  const registry = new InterceptRegistry(() => (connected.on ? session : null), silentLogger);
  try {
    await body({ script, double, session, registry, connected });
  } finally {
    registry.clear();
    tunnel.close();
    await double.close();
  }
}

const request = (init: Partial<{ workload: string; waitSeconds: number; localPort: number; mode: string }> = {}) =>
  create(InterceptRequestSchema, { workload: 'echo', mode: 'global', localPort: 8080, ...init });

test('intercept (test double for the manager): not connected is a FailedPrecondition naming kubetun connect', async () => {
  await withManager(async ({ registry, connected }) => {
    connected.on = false;
    await assert.rejects(registry.intercept(request()), (e: unknown) => e instanceof ConnectError && e.code === Code.FailedPrecondition && e.rawMessage === 'not connected: run kubetun connect first');
  });
});

test('intercept (test double for the manager): waits for active, returns the environment, serves dials; list hides it; leave removes it', async () => {
  const echo = await startTcpEcho();
  try {
    await withManager(async ({ script, double, registry }) => {
      script.pollsUntilActive = 3;
      const info = await registry.intercept(request({ localPort: echo.port }));
      assert.equal(info.state, 'active');
      assert.equal(info.spec?.namespace, 'team', "the session's namespace by default");
      assert.deepEqual(info.environment, { SECRET: 's3cr3t' });
      script.announce(create(InterceptDialSchema, { id: 'dial1', interceptId: info.id, protocol: 'TCP' }));
      while (double.accepted.length === 0) await double.next();
      assert.equal(double.accepted[0]!.headers[':path'], '/intercept/dial1');
      assert.equal((await roundTrip(double.accepted[0]!.stream, Buffer.from('hi'))).toString(), 'hi');
      const listed = await registry.list();
      assert.equal(listed.intercepts.length, 1);
      assert.equal(listed.intercepts[0]!.requests, 7n);
      assert.deepEqual(listed.intercepts[0]!.environment, {}, 'Secret values never leave through a list');
      await assert.rejects(registry.intercept(request({ localPort: echo.port })), (e: unknown) => e instanceof ConnectError && e.code === Code.AlreadyExists);
      await registry.leave(create(LeaveRequestSchema, { workload: 'echo' }));
      assert.deepEqual(script.removed, [info.id]);
      await assert.rejects(registry.leave(create(LeaveRequestSchema, { workload: 'echo' })), (e: unknown) => e instanceof ConnectError && e.code === Code.NotFound && /no intercept of team\/echo/.test(e.rawMessage));
    });
  } finally {
    await echo.close();
  }
});

test('intercept (test double for the manager): the agent never arrives → DeadlineExceeded after the wait, and the intercept is removed', async () => {
  await withManager(async ({ script, registry }) => {
    script.pollsUntilActive = Infinity;
    await assert.rejects(registry.intercept(request({ waitSeconds: 1 })), (e: unknown) => e instanceof ConnectError && e.code === Code.DeadlineExceeded && /^the agent did not arrive in 1 s/.test(e.rawMessage));
    assert.equal(script.removed.length, 1);
    assert.equal((await registry.list()).intercepts.length, 0);
  });
});

test('intercept (test double for the manager): a caller that gives up while the agents are awaited leaves no intercept behind', async () => {
  await withManager(async ({ script, registry }) => {
    script.pollsUntilActive = Infinity;
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(registry.intercept(request(), controller.signal), (e: unknown) => e instanceof ConnectError && e.code === Code.Canceled);
    assert.equal(script.removed.length, 1);
    assert.equal((await registry.list()).intercepts.length, 0);
  });
});

test('intercept (test double for the manager): a renewed session re-creates each intercept; one refused stays listed as failed with the reason', async () => {
  await withManager(async ({ script, registry, session }) => {
    const echo = await registry.intercept(request());
    await registry.intercept(request({ workload: 'cart', localPort: 9090 }));
    session.sessionId = 'sess-2';
    script.refuseCreate = (_sid, workload) => (workload === 'cart' ? 'cart is intercepted by bob@box (global)' : undefined);
    await registry.sessionRenewed();
    const byName = new Map((await registry.list()).intercepts.map((i) => [i.spec!.workload, i]));
    assert.notEqual(byName.get('echo')?.id, echo.id, 'created again in the new session');
    assert.equal(byName.get('echo')?.state, 'waiting');
    assert.equal(byName.get('cart')?.state, 'failed');
    assert.match(byName.get('cart')!.message, /could not be restored .*: cart is intercepted by bob@box \(global\)/);
    await registry.leave(create(LeaveRequestSchema, { workload: 'cart' }));
    assert.deepEqual([...(await registry.list()).intercepts.map((i) => i.spec!.workload)], ['echo']);
  });
});

test('listWorkloads (test double for the manager): the session namespace by default, every namespace for "*"', async () => {
  await withManager(async ({ script, registry }) => {
    await registry.listWorkloads(create(ListRequestSchema, { namespace: '' }));
    await registry.listWorkloads(create(ListRequestSchema, { namespace: '*' }));
    await registry.listWorkloads(create(ListRequestSchema, { namespace: 'shop' }));
    assert.deepEqual(script.listedNamespaces, ['team', '', 'shop']);
  });
});
