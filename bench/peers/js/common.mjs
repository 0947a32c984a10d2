// Shared helpers of the JS benchmark peers: options, CPU, RSS, marks from the driver.
import { readFileSync } from "node:fs";
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

// RssAnon of this process in KiB (resident anonymous memory), from /proc/self/status.
export function anonKib() {
  const m = /RssAnon:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) : null;
}

// The memory-slope scenario's steps, shared by the JS peers (see docs/performance.md):
// `open(from, to)` opens sockets from..to with topic t0 each, `joinMore(from, to)` makes
// sockets from..to join topics t1..t(topics-1); `joined()` counts join replies.
export async function memorySlope(o, { open, joinMore, joined }) {
  const small = num(o, "sockets-from", 100);
  const large = num(o, "sockets-to", 1000);
  const topics = num(o, "topics", 10);
  const settle = num(o, "settle-ms", 500);
  const mem = () => [rssKib(), anonKib()];
  const measure = async (want) => {
    if (!(await waitUntil(300000, () => joined() >= want))) throw new Error(`only ${joined()} of ${want} joined`);
    await sleep(settle);
    return mem();
  };
  await sleep(100);
  const m0 = mem();
  open(0, small);
  let want = small;
  const a = await measure(want);
  joinMore(0, small);
  want += small * (topics - 1);
  const b = await measure(want);
  open(small, large);
  want += large - small;
  const c = await measure(want);
  joinMore(small, large);
  want += (large - small) * (topics - 1);
  const d = await measure(want);
  const per = (x, y, n) => (y - x) / n;
  const n = large - small;
  return {
    scenario: "memory-slope", sockets_from: small, sockets_to: large, topics,
    rss_kib: [m0[0], a[0], b[0], c[0], d[0]], anon_kib: [m0[1], a[1], b[1], c[1], d[1]],
    rss_per_socket_kib: per(b[0], c[0], n), anon_per_socket_kib: per(b[1], c[1], n),
    rss_per_topic_small_kib: per(a[0], b[0], small * (topics - 1)), anon_per_topic_small_kib: per(a[1], b[1], small * (topics - 1)),
    rss_per_topic_large_kib: per(c[0], d[0], n * (topics - 1)), anon_per_topic_large_kib: per(c[1], d[1], n * (topics - 1)),
  };
}
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
