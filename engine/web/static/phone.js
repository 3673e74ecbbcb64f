// The softphone: "call me" makes an outCall to the `browser` endpoint and this page becomes the phone.
// Audio: binary WebSocket frames (uint32 LE sequence number, then 160 int16 LE samples), received by a worker
// (socket-worker.js) and handed straight to the
// "ipcc-player" AudioWorklet in an AudioContext at 8000 Hz. Keys: {"type":"key"} messages, which the engine
// turns into DTMF tones in the caller's audio. Microphone: 20 ms int16 chunks (binary) at 8000 Hz.
"use strict";
const FRAME = 160;
// the adaptive playout buffer (worklet.js): playing starts with 3 frames (60 ms) queued, ?prefill=N: N frames (1-25);
// it grows on underflow up to 15 frames (300 ms, or the prefill if deeper) and shrinks down to 2 frames (40 ms)
const PREFILL_FRAMES = Math.min(25, Math.max(1, Math.round(Number(new URLSearchParams(location.search).get("prefill")) || 3)));
const BUFFER = {prefill: PREFILL_FRAMES * FRAME, minTarget: Math.min(2, PREFILL_FRAMES) * FRAME,
                maxTarget: Math.max(15, PREFILL_FRAMES) * FRAME};
// the AudioContext's latencyHint: "interactive" (the smallest the platform offers), ?latency=SECONDS to ask for another
const LATENCY = Number(new URLSearchParams(location.search).get("latency")) || "interactive";
const KEYS = "123A456B789C*0#D";
const $ = (id) => document.getElementById(id);
const phone = {
  callId: null, worker: null, connected: false, ctx: null, player: null, mic: null, micStream: null,
  events: [], underflows: 0, dropped: 0, skipped: [], adjust: {grown: 0, decayed: 0, skipped: 0}, target: 0, frames: 0, ended: false, closeReason: null, closeCode: null,
  captured: [], capturing: false, playedAt: [], gaps: [], underflowsAt: [], requests: [], captureEnd: null, outputAt: new Map(), arrivals: [], jitterMs: 0, orders: [], underflowAt: [], arrivedAt: new Map(),

  async audio() {
    if (!this.ctx) {
      this.ctx = new AudioContext({sampleRate: 8000, latencyHint: LATENCY});
      await this.ctx.audioWorklet.addModule("/web/static/worklet.js");
      this.player = new AudioWorkletNode(this.ctx, "ipcc-player", {processorOptions: BUFFER});
      this.player.connect(this.ctx.destination);
      this.player.port.onmessage = (e) => this.onPlayed(e.data);
    }
    if (this.ctx.state !== "running") await this.ctx.resume();
  },

  onPlayed(data) {
    if (data.underflowAt !== undefined) {
      this.underflowAt.push([data.underflowAt, this.frames, performance.now()]);
      if (this.capturing && data.at >= 0) this.underflowsAt.push(data.at);
      return;
    }
    if (data.skip !== undefined) {  // a frame the buffer skipped to shrink (at: its place in the capture, or -1)
      this.skipped.push(data.skip);
      if (this.skipped.length > 1000) this.skipped.shift();
      return;
    }
    // silence inserted after running dry, from the worklet's start of the capture on (its counts say when)
    if (data.gap !== undefined) { if (this.capturing && this.captureStart) this.gaps.push(data.gap); return; }
    if (data.captureStarted !== undefined) { this.captureStart = data.captureStarted; return; }
    if (data.captureEnded !== undefined) { if (this.captureEnd) this.captureEnd(data.captureEnded); return; }
    this.underflows = data.underflows;
    this.target = data.target;
    this.adjust = {grown: data.grown, decayed: data.decayed, skipped: data.skipped, inserted: data.inserted};
    $("underflows").textContent = data.underflows;
    $("buffered").textContent = Math.round(data.buffered / 8);
    $("target").textContent = Math.round(data.target / 8);
    $("adjusted").textContent = `+${data.grown} −${data.decayed} skipped ${data.skipped} inserted ${Math.round(data.inserted / 8)} ms`;
    if (data.block && this.capturing) for (const x of data.block) this.captured.push(Math.round(x * 32768));
    if (this.capturing) for (const [seq, , at] of data.starts) if (at >= 0) this.playedAt.push([seq, at]);
    if (data.starts.length) {
      const stamp = this.ctx.getOutputTimestamp();
      for (const [seq, at] of data.starts) {
        this.outputAt.set(seq, performance.timeOrigin + stamp.performanceTime + (at - stamp.contextTime) * 1000);
        if (this.outputAt.size > 6000) this.outputAt.delete(this.outputAt.keys().next().value);
      }
    }
  },

  async callMe() {
    const s = ipcc.session();
    await this.audio();
    const answer = await (await fetch("/ipcc/call/outCall", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({appId: s.appId, called: "browser"})})).json();
    if (answer.code !== "000000") { $("state").textContent = `refused: ${answer.code} ${answer.msg}`; return; }
    this.attach(answer.callId);
  },

  attach(callId) {
    this.callId = callId;
    $("callId").textContent = callId;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/phone/ws?${ipcc.query({callId})}`;
    const frames = new MessageChannel();
    this.player.port.postMessage({port: frames.port2}, [frames.port2]);
    const worker = this.worker = new Worker("/web/static/socket-worker.js");
    worker.onmessage = (e) => this.onWorker(e.data);
    worker.postMessage({connect: true, url, player: frames.port1}, [frames.port1]);
  },

  onWorker(m) {
    if (m.arrived !== undefined) {
      this.onArrival(m.arrived, m.at);
    } else if (m.json !== undefined) {
      this.onJson(JSON.parse(m.json));
    } else if (m.open) {
      this.connected = true;
      $("state").textContent = "connected";
      for (const id of ["hangup", "mic", "send"]) $(id).disabled = false;
    } else if (m.closed) {
      this.connected = false;
      this.closeCode = m.closed.code; this.closeReason = m.closed.reason; this.ended = true;
      this.player.port.postMessage({ended: true});
      $("state").textContent = `closed (${m.closed.code}${m.closed.reason ? ": " + m.closed.reason : ""})`;
      for (const id of ["hangup", "mic", "send"]) $(id).disabled = true;
      this.stopMic();
    }
  },

  onArrival(seq, at) {
    this.frames += 1;
    this.arrivedAt.set(seq, at);
    if (this.arrivedAt.size > 6000) this.arrivedAt.delete(this.arrivedAt.keys().next().value);
    this.arrivals.push(at - performance.timeOrigin - seq * 20);  // arrival against the frame's nominal time
    if (this.arrivals.length > 50) this.arrivals.shift();
    if (seq % 5 === 0) {
      this.jitterMs = Math.max(...this.arrivals) - Math.min(...this.arrivals);
      $("jitter").textContent = this.jitterMs.toFixed(1);
    }
  },

  onJson(m) {
    if (m.type === "status") {
      $("time").textContent = m.t.toFixed(2);
      $("dropped").textContent = this.dropped = m.dropped;
      const p = m.playing;
      $("playing").textContent = p ? `order ${p.order} play ${p.repetition + 1}${p.inGap ? " (gap)" : ""}, loop ${p.loop + 1}` : "nothing";
      $("collecting").textContent = p && p.collecting ? "collecting" : "-";
      $("digits").textContent = p ? p.digits : "";
      $("deadline").textContent = p && p.deadlineMs !== null && p.collecting ? `${(p.deadlineMs / 1000).toFixed(2)} s` : "-";
      document.querySelectorAll("#orders li").forEach((li, i) => li.classList.toggle("now", !!p && i === p.order));
    } else if (m.type === "request") {
      this.orders = m.orders;
      this.requests.push(m.at);
      $("orders").replaceChildren(...m.orders.map((o) => ipcc.el("li",
        `${o.kind} ${JSON.stringify(o.source)} ×${o.plays}${o.gapMs ? ` gap ${o.gapMs} ms` : ""}${o.getkey ? " (getkey)" : ""}`)));
    } else if (m.type === "event") {
      this.events.push(m);
      $("events").append(ipcc.el("li", ipcc.describeEvent(m.at, m.event)));
    } else if (m.type === "ended") {
      $("state").textContent = "call ended";
    }
  },

  press(key) {
    if (this.connected) this.worker.postMessage({text: JSON.stringify({type: "key", key})});
  },

  async startMic() {
    await this.audio();
    this.micStream = await navigator.mediaDevices.getUserMedia(
      {audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
    const source = this.ctx.createMediaStreamSource(this.micStream);
    const node = this.mic = new AudioWorkletNode(this.ctx, "ipcc-mic");
    const mute = this.ctx.createGain();
    mute.gain.value = 0;
    source.connect(node).connect(mute).connect(this.ctx.destination);
    const blocks = new MessageChannel();
    node.port.postMessage({port: blocks.port1}, [blocks.port1]);
    this.worker.postMessage({mic: blocks.port2}, [blocks.port2]);
    $("micState").textContent = "on";
    $("mic").textContent = "microphone off";
  },

  stopMic() {
    if (this.micStream) for (const track of this.micStream.getTracks()) track.stop();
    if (this.mic) this.mic.disconnect();
    this.mic = this.micStream = null;
    $("micState").textContent = "off";
    $("mic").textContent = "microphone on";
  },

  startCapture() {
    Object.assign(this, {captured: [], skipped: [], playedAt: [], gaps: [], underflowsAt: [], captureStart: null, capturing: true});
    this.player.port.postMessage({capture: true});
  },
  // ends the capture: everything the buffer did in it, once the worklet has said all (see worklet.js):
  // the samples it played, where each frame started, the frames it skipped, the silence it inserted after each
  // underflow, and its counts when the capture started and ended
  stopCapture() {
    return new Promise((resolve) => {
      this.captureEnd = (counts) => {
        this.capturing = false;
        this.captureEnd = null;
        const ints = (frame) => Array.from(frame, (x) => Math.round(x * 32768));
        resolve({captured: this.captured, played: this.playedAt, gaps: this.gaps, underflows: this.underflowsAt,
                 skipped: this.skipped.filter((x) => x.at >= 0).map((x) => ({seq: x.seq, at: x.at, frame: ints(x.frame)})),
                 start: this.captureStart, end: counts, dropped: this.dropped});
        this.captured = [];
      };
      this.player.port.postMessage({capture: false});
    });
  },

  async hangup() {
    const s = ipcc.session();
    await fetch("/ipcc/call/disConnect", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({appId: s.appId, callId: this.callId})});
  },

  async sendRequest() {
    const s = ipcc.session();
    let body;
    try { body = JSON.parse($("request").value); } catch (err) { $("sent").textContent = `not JSON: ${err.message}`; return; }
    Object.assign(body, {appId: s.appId, callId: this.callId});
    const answer = await (await fetch("/ipcc/call/multOrders", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body)})).json();
    $("sent").textContent = `${answer.code} ${answer.msg}`;
  },
};
window.phone = phone;

(function setup() {
  const s = ipcc.session();
  $("appId").value = s.appId;
  $("secret").value = s.secret;
  const keep = () => { sessionStorage.setItem("ipcc.appId", $("appId").value.trim()); sessionStorage.setItem("ipcc.secret", $("secret").value); };
  $("appId").onchange = keep;
  $("secret").onchange = keep;
  for (const key of KEYS) {
    const button = ipcc.el("button", key);
    button.id = "key-" + key;
    button.onclick = () => phone.press(key);
    $("keypad").append(button);
  }
  $("call").onclick = () => { keep(); phone.callMe(); };
  $("hangup").onclick = () => phone.hangup();
  $("mic").onclick = () => (phone.mic ? phone.stopMic() : phone.startMic());
  $("send").onclick = () => phone.sendRequest();
  const callId = new URLSearchParams(location.search).get("callId");
  if (callId) phone.audio().then(() => phone.attach(callId));
})();
