// Benchmark peer: the `ws` package speaking Phoenix V2 frames by hand.
// Same command line, driver protocol and JSON result line as `slipstream-bench client`
// (see docs/performance.md). Scenarios: echo, flood, memory, rejoin (heartbeat and
// reconnect-spread are skipped: a raw client has neither).
import WebSocket from "ws";
import { cpuSeconds, emit, main, marksFromStdin, median, nowMs, num, percentile, rssKib, sleep, waitUntil } from "./common.mjs";

const TOPIC = "room:bench";
const wsUrl = (url) => `${url}/websocket?token=bench&vsn=2.0.0`;
const frame = (joinRef, ref, topic, event, payload) => JSON.stringify([joinRef, ref, topic, event, payload]);

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(url), { perMessageDeflate: false });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

function joinOnce(ws, topic, joinRef) {
  return new Promise((resolve) => {
    const onMsg = (data) => {
      const [, ref, , event] = JSON.parse(data);
      if (event === "phx_reply" && ref === joinRef) {
        ws.off("message", onMsg);
        resolve();
      }
    };
    ws.on("message", onMsg);
    ws.send(frame(joinRef, joinRef, topic, "phx_join", {}));
  });
}

async function echo(o) {
  const total = num(o, "n", 10000);
  const inflight = Math.max(1, Math.min(num(o, "inflight", 100), total));
  const ws = await open(o.url);
  await joinOnce(ws, TOPIC, "1");
  const cpu0 = cpuSeconds();
  const t0 = nowMs();
  let sent = 0;
  let received = 0;
  let errors = 0;
  await new Promise((resolve) => {
    const pushNext = () => {
      ws.send(frame("1", String(sent + 2), TOPIC, "echo", { n: sent }));
      sent += 1;
    };
    ws.on("message", (data) => {
      const [, ref, , event, payload] = JSON.parse(data);
      if (event !== "phx_reply" || ref === null) return;
      received += 1;
      if (payload.status !== "ok") errors += 1;
      if (sent < total) pushNext();
      if (received >= total) resolve();
    });
    for (let i = 0; i < inflight; i += 1) pushNext();
  });
  const cpu = cpuSeconds() - cpu0;
  const wall = (nowMs() - t0) / 1000;
  ws.terminate();
  return { scenario: "echo", variant: "raw", n: total, inflight, received, errors, cpu_s: cpu, wall_s: wall, rss_kib: rssKib() };
}

async function flood(o) {
  const count = num(o, "count", 200000);
  const size = num(o, "size", 92);
  const ws = await open(o.url);
  await joinOnce(ws, TOPIC, "1");
  const cpu0 = cpuSeconds();
  const t0 = nowMs();
  let received = 0;
  let frames = 0;
  let bytes = 0;
  const replyCount = await new Promise((resolve) => {
    ws.on("message", (data) => {
      frames += 1;
      bytes += data.length;
      const [, ref, , event, payload] = JSON.parse(data);
      if (event === "flooded") received += 1;
      else if (event === "phx_reply" && ref === "2") resolve(payload.response.count);
    });
    ws.send(frame("1", "2", TOPIC, "flood", { count, size }));
  });
  const cpu = cpuSeconds() - cpu0;
  const wall = (nowMs() - t0) / 1000;
  ws.terminate();
  return {
    scenario: "flood", count, received, reply_count: replyCount, dropped: Math.max(0, replyCount - received),
    ok: received === replyCount && replyCount === count, frame_bytes: bytes / Math.max(frames, 1),
    cpu_s: cpu, wall_s: wall, msgs_per_s: received / wall, rss_kib: rssKib(),
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
    const ws = new WebSocket(wsUrl(o.url), { perMessageDeflate: false });
    ws.on("open", () => {
      for (let t = 0; t < topics; t += 1) ws.send(frame(String(t + 1), String(t + 1), `room:s${i}t${t}`, "phx_join", {}));
    });
    ws.on("message", (data) => {
      const [, ref, , event] = JSON.parse(data);
      if (event === "phx_reply" && ref !== null) joined += 1;
    });
    ws.on("error", () => {});
    keep.push(ws);
  }
  const want = sockets * topics;
  if (!(await waitUntil(300000, () => joined >= want))) throw new Error(`only ${joined} of ${want} joined`);
  const joinS = (nowMs() - t0) / 1000;
  await sleep(num(o, "settle-ms", 500));
  const rss1 = rssKib();
  return {
    scenario: "memory", sockets, topics, joined, rss_before_kib: rss0, rss_after_kib: rss1,
    kib_per_socket: (rss1 - rss0) / sockets, connect_join_s: joinS, alive: keep.filter((w) => w.readyState === WebSocket.OPEN).length,
  };
}

async function rejoin(o) {
  const topics = num(o, "topics", 100);
  const restarts = num(o, "restarts", 20);
  marksFromStdin();
  const backoff = [10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000];
  const results = [];
  let cycle = 0;
  let nextRef = 1;
  let connects = 0;
  let attempt = 0;
  await new Promise((resolve) => {
    const connect = () => {
      const ws = new WebSocket(wsUrl(o.url), { perMessageDeflate: false });
      let opened = null;
      let first = null;
      const pending = new Set();
      ws.on("open", () => {
        attempt = 0;
        connects += 1;
        opened = nowMs();
        for (let t = 0; t < topics; t += 1) {
          const r = String(nextRef);
          nextRef += 1;
          pending.add(r);
          ws.send(frame(r, r, `room:r${t}`, "phx_join", {}));
        }
      });
      ws.on("message", (data) => {
        const [, ref, , event] = JSON.parse(data);
        if (event !== "phx_reply" || !pending.delete(ref)) return;
        const ms = nowMs() - opened;
        if (first === null) first = ms;
        if (pending.size === 0) {
          if (cycle > 0) results.push([first, ms]);
          cycle += 1;
          if (cycle > restarts) resolve();
          else emit({ event: "ready" });
        }
      });
      ws.on("error", () => {});
      ws.on("close", () => {
        if (cycle > restarts) return;
        const delay = backoff[Math.min(attempt, backoff.length - 1)];
        attempt += 1;
        setTimeout(connect, delay);
      });
    };
    connect();
  });
  const last = results.map((r) => r[1]);
  return {
    scenario: "rejoin", topics, restarts: results.length, last_join_ms: last, first_join_ms: results.map((r) => r[0]),
    median_ms: median(last), max_ms: percentile(last, 100), connects,
  };
}

main("rawnode", { echo, flood, memory, rejoin });
