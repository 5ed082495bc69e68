// The functions that used the most CPU themselves (self time) in a V8 .cpuprofile (node --cpu-prof, or the bench's
// KUBETUN_BENCH_CPU_PROF): node dist/bench/cpu-profile-top.js FILE [N=10]. Percentages are of the time the process
// was busy, i.e. of all samples but (idle).
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, countText] = process.argv.slice(2);
if (file === undefined) {
  console.error('usage: cpu-profile-top FILE.cpuprofile [N]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;

function where(frame: ProfileNode['callFrame']): string {
  if (frame.url === '') return '';
  const path = frame.url.startsWith('file://') ? relative(process.cwd(), fileURLToPath(frame.url)) : frame.url;
  // V8 counts lines from 0.
  return `${path}:${frame.lineNumber + 1}`;
}

// A function shows up as one node per call path: self time is summed per function and place.
const keyOf = new Map<number, string>();
for (const node of profile.nodes) keyOf.set(node.id, `${node.callFrame.functionName || '(anonymous)'}\t${where(node.callFrame)}`);
const selfUs = new Map<string, number>();
// A sample's time is the delta to the next sample (how long the stack it saw was on).
for (let i = 0; i < profile.samples.length; i++) {
  const key = keyOf.get(profile.samples[i]!)!;
  selfUs.set(key, (selfUs.get(key) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const busy = total - [...selfUs].filter(([key]) => key.startsWith('(idle)\t')).reduce((a, [, us]) => a + us, 0);
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy`);
const top = [...selfUs].filter(([key]) => !key.startsWith('(idle)\t')).sort((a, b) => b[1] - a[1]).slice(0, Number(countText ?? 10));
for (const [key, us] of top) {
  const [name, place] = key.split('\t');
  console.log(`${(us / 1e3).toFixed(1).padStart(9)} ms ${((100 * us) / busy).toFixed(1).padStart(5)} %  ${name}  ${place}`);
}
