// Shared helpers of the JS benchmark peers: options, CPU, RSS, marks from the driver.
import { createInterface } from "node:readline";

export function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith("--")) {
      o[a.slice(2)] = next;
      i += 1;
    } else {
      o[a.slice(2)] = "true";
    }
  }
  return o;
}

export const num = (o, k, d) => (o[k] === undefined ? d : Number(o[k]));

// user+sys CPU seconds of this process.
export function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export const rssKib = () => process.memoryUsage().rss / 1024;
export const epochMs = () => performance.timeOrigin + performance.now();
export const nowMs = () => performance.now();

export function median(v) {
  const s = [...v].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(v, p) {
  const s = [...v].sort((a, b) => a - b);
  if (s.length === 0) return null;
  if (p >= 100) return s[s.length - 1];
  const rank = Math.min(Math.max(Math.ceil((p / 100) * s.length), 1), s.length);
  return s[rank - 1];
}

export function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

export function finish(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n", () => process.exit(obj.error ? 1 : 0));
}

// Marks written by the driver on stdin: "NAME EPOCH_MS" per line.
export function marksFromStdin() {
  const marks = new Map();
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const [name, value] = line.trim().split(/\s+/);
    if (name && value !== undefined) marks.set(name, Number(value));
  });
  return marks;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(timeoutMs, f) {
  const deadline = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

export async function main(client, scenarios) {
  const o = parseArgs(process.argv.slice(2));
  const run = scenarios[o.scenario];
  let result;
  try {
    if (!run) {
      result = { skipped: `scenario ${o.scenario} not implemented by ${client}` };
    } else {
      result = await run(o);
    }
  } catch (e) {
    result = { error: String(e && e.stack ? e.stack : e) };
  }
  finish({ ...result, client });
}
