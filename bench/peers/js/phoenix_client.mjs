// Benchmark peer: phoenix.js (Socket with the `ws` WebSocket transport, vsn 2.0.0).
// Same command line, driver protocol and JSON result line as `slipstream-bench client`
// (see docs/performance.md). Usage: node phoenix_client.mjs --scenario S --url URL [...]
import { Socket } from "phoenix";
import WebSocket from "ws";
import {
  cpuSeconds, emit, epochMs, main, marksFromStdin, median, nowMs, num, percentile, rssKib, sleep, waitUntil,
} from "./common.mjs";

const TOPIC = "room:bench";

function socket(url, extra = {}) {
  return new Socket(url, {
    transport: WebSocket,
    vsn: "2.0.0",
    params: { token: "bench" },
    timeout: 120000,
    ...extra,
  });
}

function joinOnce(channel) {
  return new Promise((resolve, reject) => {
    channel.join(60000).receive("ok", resolve).receive("error", reject).receive("timeout", () => reject(new Error("join timeout")));
  });
}

async function echo(o) {
  const total = num(o, "n", 10000);
  const inflight = Math.max(1, Math.min(num(o, "inflight", 100), total));
  const s = socket(o.url);
  s.connect();
  const ch = s.channel(TOPIC, {});
  await joinOnce(ch);
  const cpu0 = cpuSeconds();
  const t0 = nowMs();
  let sent = 0;
  let received = 0;
  let errors = 0;
  await new Promise((resolve) => {
    const onReply = (ok) => () => {
      received += 1;
      if (!ok) errors += 1;
      if (sent < total) pushNext();
      if (received >= total) resolve();
    };
    const pushNext = () => {
      const n = sent;
      sent += 1;
      ch.push("echo", { n }, 120000).receive("ok", onReply(true)).receive("error", onReply(false)).receive("timeout", onReply(false));
    };
    for (let i = 0; i < inflight; i += 1) pushNext();
  });
  const cpu = cpuSeconds() - cpu0;
  const wall = (nowMs() - t0) / 1000;
  return { scenario: "echo", variant: "phoenixjs", n: total, inflight, received, errors, cpu_s: cpu, wall_s: wall, rss_kib: rssKib() };
}

async function flood(o) {
  const count = num(o, "count", 200000);
  const size = num(o, "size", 92);
  const s = socket(o.url);
  s.connect();
  const ch = s.channel(TOPIC, {});
  let received = 0;
  ch.on("flooded", () => { received += 1; });
  await joinOnce(ch);
  const cpu0 = cpuSeconds();
  const t0 = nowMs();
  const resp = await new Promise((resolve, reject) => {
    ch.push("flood", { count, size }, 600000).receive("ok", resolve).receive("error", reject).receive("timeout", () => reject(new Error("flood timeout")));
  });
  const cpu = cpuSeconds() - cpu0;
  const wall = (nowMs() - t0) / 1000;
  const replyCount = resp.count;
  return {
    scenario: "flood", count, received, reply_count: replyCount, dropped: Math.max(0, replyCount - received),
    ok: received === replyCount && replyCount === count, cpu_s: cpu, wall_s: wall, msgs_per_s: received / wall, rss_kib: rssKib(),
  };
}

async function memory(o) {
  const sockets = num(o, "sockets", 1000);
  const topics = num(o, "topics", 1);
  await sleep(100);
  const rss0 = rssKib();
  const t0 = nowMs();
  let joined = 0;
  const keep = [];
  for (let i = 0; i < sockets; i += 1) {
    const s = socket(o.url);
    s.connect();
    for (let t = 0; t < topics; t += 1) {
      s.channel(`room:s${i}t${t}`, {}).join(60000).receive("ok", () => { joined += 1; });
    }
    keep.push(s);
  }
  const want = sockets * topics;
  if (!(await waitUntil(300000, () => joined >= want))) throw new Error(`only ${joined} of ${want} joined`);
  const joinS = (nowMs() - t0) / 1000;
  await sleep(num(o, "settle-ms", 500));
  const rss1 = rssKib();
  return {
    scenario: "memory", sockets, topics, joined, rss_before_kib: rss0, rss_after_kib: rss1,
    kib_per_socket: (rss1 - rss0) / sockets, connect_join_s: joinS, alive: keep.filter((s) => s.isConnected()).length,
  };
}

async function rejoin(o) {
  const topics = num(o, "topics", 100);
  const restarts = num(o, "restarts", 20);
  marksFromStdin();
  const s = socket(o.url);
  let opened = null;
  let joinedNow = 0;
  let first = null;
  let cycle = 0;
  const results = [];
  let connects = 0;
  let done;
  const finished = new Promise((r) => { done = r; });
  // Registered before the channels', so it runs first on every open.
  s.onOpen(() => { opened = nowMs(); joinedNow = 0; connects += 1; });
  const onJoined = () => {
    const ms = nowMs() - opened;
    joinedNow += 1;
    if (joinedNow === 1) first = ms;
    if (joinedNow === topics) {
      if (cycle > 0) results.push([first, ms]);
      cycle += 1;
      if (cycle > restarts) done();
      else emit({ event: "ready" });
    }
  };
  s.connect();
  for (let t = 0; t < topics; t += 1) s.channel(`room:r${t}`, {}).join(60000).receive("ok", onJoined);
  await finished;
  const last = results.map((r) => r[1]);
  return {
    scenario: "rejoin", topics, restarts: results.length, last_join_ms: last, first_join_ms: results.map((r) => r[0]),
    median_ms: median(last), max_ms: percentile(last, 100), connects,
  };
}

async function heartbeat(o) {
  const interval = num(o, "interval-ms", 1000);
  const trials = num(o, "trials", 5);
  const marks = marksFromStdin();
  const detected = [];
  let done;
  const finished = new Promise((r) => { done = r; });
  const s = socket(o.url, {
    heartbeatIntervalMs: interval,
    logger: (kind, msg) => {
      if (kind === "transport" && msg.startsWith("heartbeat timeout")) {
        const now = epochMs();
        const freeze = marks.get("freeze");
        if (freeze !== undefined) {
          marks.delete("freeze");
          detected.push(now - freeze);
          emit({ event: "detected", reason: "heartbeat_timeout" });
          if (detected.length >= trials) done();
        }
      }
    },
  });
  s.onOpen(() => { if (detected.length < trials) emit({ event: "ready" }); });
  s.connect();
  await finished;
  return {
    scenario: "heartbeat", interval_ms: interval, timeout_ms: interval, detect_ms: detected,
    median_ms: median(detected), max_ms: percentile(detected, 100), bound_ms: 2 * interval,
  };
}

function histogram(values, width) {
  const h = {};
  for (const v of values) {
    const b = String(Math.floor(v / width) * width);
    h[b] = (h[b] || 0) + 1;
  }
  return h;
}

async function reconnectSpread(o) {
  const clients = num(o, "clients", 1000);
  const marks = marksFromStdin();
  let initial = 0;
  const connects = [];
  const keep = [];
  for (let i = 0; i < clients; i += 1) {
    const s = socket(o.url);
    let first = true;
    s.onOpen(() => {
      if (first) { first = false; initial += 1; } else connects.push(epochMs());
    });
    s.connect();
    s.channel(TOPIC, {}).join(60000);
    keep.push(s);
  }
  if (!(await waitUntil(120000, () => initial >= clients))) throw new Error(`only ${initial} of ${clients} connected`);
  emit({ event: "ready" });
  const complete = await waitUntil(120000, () => connects.length >= clients && marks.has("restart"));
  const restart = marks.get("restart");
  if (restart === undefined) throw new Error("no restart mark from the driver");
  const rel = connects.map((t) => t - restart);
  const down = marks.get("down");
  return {
    scenario: "reconnect-spread", clients, reconnected: rel.length, complete,
    down_ms: down === undefined ? null : restart - down,
    min_ms: percentile(rel, 0), p10_ms: percentile(rel, 10), p50_ms: median(rel), p90_ms: percentile(rel, 90),
    max_ms: percentile(rel, 100), histogram_25ms: histogram(rel, 25),
  };
}

main("phoenixjs", { echo, flood, memory, rejoin, heartbeat, "reconnect-spread": reconnectSpread });
