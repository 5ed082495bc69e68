// Run inside the test namespace by kubelet.test.ts: speaks the kubelet's port-forward WebSocket protocol straight
// to the kubelet, sends one chunk on data channel 0, and prints what came back as JSON: the chosen subprotocol,
// each frame's channel and bytes (as text), or the HTTP status and body of a refused upgrade.
// usage: node kubelet-ws-client.js URL SUBPROTOCOL TEXT_TO_SEND WAIT_MS

import WebSocket from 'ws';

const [url, protocol, text, waitMs] = process.argv.slice(2) as [string, string, string, string];
const base64 = protocol.includes('base64');
const frames: { channel: number; text: string }[] = [];
const ws = new WebSocket(url, [protocol], { rejectUnauthorized: false });
const finish = (extra: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify({ protocol: ws.protocol, frames, ...extra }) + '\n');
  process.exit(0);
};
const timer = setTimeout(() => finish({ closed: false }), Number(waitMs));
ws.on('open', () => {
  const payload = Buffer.from(text);
  ws.send(base64 ? `0${payload.toString('base64')}` : Buffer.concat([Buffer.from([0]), payload]));
});
ws.on('message', (message: Buffer, isBinary: boolean) => {
  if (base64 && !isBinary) {
    const s = message.toString('utf8');
    frames.push({ channel: s.charCodeAt(0) - 48, text: Buffer.from(s.slice(1), 'base64').toString('latin1') });
  } else {
    frames.push({ channel: message[0]!, text: message.subarray(1).toString('latin1') });
  }
});
ws.on('close', () => {
  clearTimeout(timer);
  finish({ closed: true });
});
ws.on('unexpected-response', (_req, res) => {
  let body = '';
  res.setEncoding('utf8').on('data', (c: string) => (body += c));
  res.on('end', () => finish({ status: res.statusCode, body }));
});
ws.on('error', (error) => finish({ error: error.message }));
