// The calls page: the application's live calls with their events, its finished calls (every kind: wav, sip,
// browser, ...) with their recordings (the call's, each message's: play here or download) and the picture of the
// call; a SIP call's RTP figures in one line. Refreshed every second.
"use strict";
const $ = (id) => document.getElementById(id);
const calls = {
  data: null,
  finishedKey: "",
  async refresh() {
    const response = await fetch(`/web/calls?${ipcc.query()}`);
    if (!response.ok) { $("state").textContent = (await response.json()).error; return; }
    this.data = await response.json();
    const shown = this.data.live.length < this.data.liveCount ? ` (the first ${this.data.live.length} shown)` : "";
    $("state").textContent = `${this.data.liveCount} live${shown}, ${this.data.finished.length} finished`;
    const eventList = (events) => {
      const ul = ipcc.el("ul");
      for (const e of events) ul.append(ipcc.el("li", ipcc.describeEvent(null, e)));
      return ul;
    };
    $("live").tBodies[0].replaceChildren(...this.data.live.map((c) => {
      const tr = ipcc.el("tr");
      const cell = ipcc.el("td");
      cell.append(ipcc.el("code", c.callId));
      const events = ipcc.el("td");
      events.append(eventList(c.events));
      tr.append(cell, this.kindCell(c.kind || "-", c.rtp), events);
      return tr;
    }));
    const finishedKey = JSON.stringify(this.data.finished);
    if (finishedKey === this.finishedKey) return;  // unchanged: a recording playing here plays on
    this.finishedKey = finishedKey;
    $("finished").tBodies[0].replaceChildren(...this.data.finished.map((c) => {
      const tr = ipcc.el("tr");
      tr.dataset.callId = c.callId;
      const id = ipcc.el("td");
      const show = ipcc.el("a", c.callId);
      show.href = "#";
      show.className = "show";
      show.onclick = (e) => { e.preventDefault(); this.show(c); };
      id.append(show);
      const events = ipcc.el("td");
      events.append(eventList(c.events));
      const recordings = ipcc.el("td");
      for (const r of c.recordings) recordings.append(this.recording(r));
      if (!c.recordings.length) recordings.textContent = "none";
      const phone = c.called && !c.called.startsWith(c.kind) ? `${c.kind} ${c.called}` : (c.called || c.kind);
      tr.append(id, this.kindCell(phone, c.rtp), ipcc.el("td", `${c.seconds.toFixed(2)} s`),
                events, recordings);
      return tr;
    }));
  },
  // the call's kind (or phone), and under it a SIP call's RTP in one line
  kindCell(text, rtp) {
    const td = ipcc.el("td", text);
    if (rtp) td.append(ipcc.el("br"), ipcc.el("small", this.rtpLine(rtp), "rtp"));
    return td;
  },
  rtpLine(rtp) {
    if (!rtp.available) return "RTP: figures unavailable";
    const phone = rtp.remotePacketsLost === null ? ""
      : `; the phone: lost ${rtp.remotePacketsLost}, jitter ${rtp.remoteJitterMs.toFixed(1)} ms`;
    return `RTP ${rtp.codec}: sent ${rtp.packetsSent}, received ${rtp.packetsReceived}, lost ${rtp.packetsLost}, ` +
      `jitter ${rtp.jitterMs.toFixed(1)} ms, late ${rtp.lateFrames}, concealed ${rtp.concealedFrames}${phone}`;
  },
  // one recording: its label, a player and a download link (the file's own name)
  recording(r) {
    const box = ipcc.el("div", undefined, "recording");
    const audio = ipcc.el("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = `${r.url}?${ipcc.query()}`;
    const download = ipcc.el("a", `download ${r.download}`);
    download.href = audio.src;
    download.download = r.download;
    box.append(ipcc.el("span", `${r.label}, ${r.seconds.toFixed(2)} s`), ipcc.el("br"), audio, ipcc.el("br"), download);
    return box;
  },
  show(c) {
    $("pictureOf").textContent = `call ${c.callId}`;
    $("picture").src = `${c.picture}?${ipcc.query()}`;
  },
};
window.calls = calls;
(function setup() {
  const s = ipcc.session();
  $("appId").value = s.appId;
  $("secret").value = s.secret;
  $("refresh").onclick = () => {
    sessionStorage.setItem("ipcc.appId", $("appId").value.trim());
    sessionStorage.setItem("ipcc.secret", $("secret").value);
    calls.refresh();
  };
  calls.refresh();
  setInterval(() => calls.refresh(), 1000);
})();
