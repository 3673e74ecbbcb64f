// The phone's WebSocket, in a dedicated worker so that the page's main thread (its DOM, a busy tab) is never
// on the audio path: binary frames (uint32 LE sequence number, 160 int16 LE samples) go straight to the
// player worklet through a MessagePort; microphone blocks come straight from the mic worklet and leave as
// 20 ms int16 chunks. The page gets the JSON messages, frame arrivals (for its jitter figure) and the close.
"use strict";
const FRAME = 160;
let socket = null;
let player = null;
let pending = new Int16Array(0);

function send(data) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(data);
}

function onFrame(buffer) {
  const seq = new DataView(buffer).getUint32(0, true);
  const samples = new Int16Array(buffer, 4, FRAME);
  const frame = new Float32Array(FRAME);
  for (let i = 0; i < FRAME; i++) frame[i] = samples[i] / 32768;
  player.postMessage({seq, frame}, [frame.buffer]);
  postMessage({arrived: seq, at: performance.timeOrigin + performance.now()});
}

function onMic(block) {
  const joined = new Int16Array(pending.length + block.length);
  joined.set(pending);
  for (let i = 0; i < block.length; i++) {
    joined[pending.length + i] = Math.max(-32768, Math.min(32767, Math.round(block[i] * 32768)));
  }
  let offset = 0;
  for (; joined.length - offset >= FRAME; offset += FRAME) send(joined.slice(offset, offset + FRAME).buffer);
  pending = joined.slice(offset);
}

onmessage = (event) => {
  const m = event.data;
  if (m.connect) {
    player = m.player;
    socket = new WebSocket(m.url);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => postMessage({open: true});
    socket.onclose = (e) => postMessage({closed: {code: e.code, reason: e.reason}});
    socket.onmessage = (e) => (typeof e.data === "string" ? postMessage({json: e.data}) : onFrame(e.data));
  } else if (m.mic) {
    m.mic.onmessage = (e) => onMic(e.data);
  } else if (m.text !== undefined) {
    send(m.text);
  }
};
