// What `node --cpu-prof` does, for processes whose command line the bench cannot change (kubetun's daemons, the
// manager pod): loaded with NODE_OPTIONS=--import=<this file>, it samples the process from its start (V8's CPU
// profiler, every 1 ms as --cpu-prof does) and at exit writes <KUBETUN_BENCH_CPU_PROF>/<command>.<pid>.cpuprofile,
// where <command> is kubetun's subcommand (root-daemon, user-daemon, traffic-manager, …).
import { writeFileSync } from 'node:fs';
import { Session, type Profiler } from 'node:inspector';
import { basename, join } from 'node:path';

const dir = process.env.KUBETUN_BENCH_CPU_PROF;
if (dir !== undefined && dir !== '') {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.start');
  const command = process.argv[2] ?? basename(process.argv[1] ?? 'node');
  // An in-thread session answers synchronously, so the profile is written before the process is gone.
  process.on('exit', () => {
    session.post('Profiler.stop', (error, result: Profiler.StopReturnType) => {
      if (error === null) writeFileSync(join(dir, `${command}.${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
