// AudioWorklet processors of the softphone page, in an AudioContext at 8000 Hz.
// "ipcc-player": plays the call's 20 ms frames posted by the page ({seq, frame: Float32Array}) through an
// adaptive playout buffer (all sizes in samples):
//   * it starts, and restarts after running dry, once `target` samples are queued (default 480 = 60 ms);
//   * running dry (an underflow) deepens `target` by one frame, and, once the late frame comes, to cover the
//     whole gap between its arrival and the one before (the stall, in the context's time) and a frame more,
//     up to `maxTarget` (default 2400 = 300 ms);
//   * a quiet `calmSamples` (default 80000 = 10 s) without an underflow lowers `target` by one frame, down to
//     `minTarget` (default 320 = 40 ms);
//   * when the queue stayed at or above `target` for a whole `windowSamples` (default 16000 = 2 s) of output
//     (its level after each block; it dips a frame and a block below a steady start), one frame is skipped:
//     the next quiet one (peak below `quietPeak`, default 0.01 = -40 dBFS), or any one once `maxWaitSamples`
//     (default 16000) passed without a quiet frame. One frame at a time.
// Counts underflows, growths, decays, skips and the samples of silence inserted after running dry (`inserted`);
// reports for each frame the context time at which its first sample is output and where it is in the capture
// (`starts`: [seq, time, at]), each skipped frame ({skip: {seq, at, frame}}, `at`: the captured sample it was cut
// at), each underflow ({underflowAt: time, at}) and, once playing resumes, the silence it inserted ({gap: {at,
// samples}}); while capturing it hands every rendered block back. Capture positions are -1 outside a capture.
// {capture: true} starts a capture ({captureStarted: counts} precedes its messages); {capture: false} ends it:
// {captureEnded: {samples, ...counts}} follows every message of it.
// "ipcc-mic": hands every block of its input (the microphone) on (to the socket's worker, given a port).
// Frames come on the node's port or on a port handed over ({port}), straight from the socket's worker.
const FRAME = 160;

class PlayoutBuffer {
  constructor(opts) {
    this.minTarget = opts.minTarget || 320;
    this.maxTarget = Math.max(opts.maxTarget || 2400, this.minTarget);
    this.target = Math.min(this.maxTarget, Math.max(this.minTarget, opts.prefill || 480));
    this.windowSamples = opts.windowSamples || 16000;
    this.calmSamples = opts.calmSamples || 80000;
    this.maxWaitSamples = opts.maxWaitSamples || 16000;
    this.quietPeak = opts.quietPeak || 0.01;
    this.queue = [];
    this.offset = 0;
    this.buffered = 0;
    this.started = false;
    this.counts = {underflows: 0, grown: 0, decayed: 0, skipped: 0, inserted: 0};
    this.windowMin = Infinity;
    this.windowLeft = this.windowSamples;
    this.calmLeft = this.calmSamples;
    this.skipWait = -1;  // < 0: no skip due; else samples waited for a quiet frame
    this.lastArrival = -1;  // context time of the last frame's arrival, samples
    this.dry = false;  // ran dry, and no frame came since
  }

  // a frame arrives at `nowSamples` (the context's time): after running dry, deep enough for that stall
  push(item, nowSamples) {
    if (this.dry && this.lastArrival >= 0) {
      const gap = Math.ceil((nowSamples - this.lastArrival) / FRAME) * FRAME + FRAME;  // a frame of margin
      if (gap > this.target && this.target < this.maxTarget) {
        this.target = Math.min(gap, this.maxTarget);
        this.counts.grown += 1;
      }
    }
    this.dry = false;
    this.lastArrival = nowSamples;
    this.queue.push(item);
    this.buffered += item.frame.length;
  }

  // a skip is due (and taken here, at a frame's start): the frame skipped, or null
  skip() {
    if (this.skipWait < 0 || this.offset !== 0 || this.buffered < this.target) return null;
    const head = this.queue[0];
    let peak = 0;
    for (const x of head.frame) peak = Math.max(peak, Math.abs(x));
    if (peak >= this.quietPeak && this.skipWait < this.maxWaitSamples) return null;
    this.queue.shift();
    this.buffered -= head.frame.length;
    this.skipWait = -1;
    this.counts.skipped += 1;
    return head;
  }

  // after each block of `n` samples: ran dry (`dry`, not at the end) or how deep the queue stayed
  account(n, dry) {
    if (dry) {
      this.counts.underflows += 1;
      this.dry = true;
      if (this.target < this.maxTarget) { this.target = Math.min(this.target + FRAME, this.maxTarget); this.counts.grown += 1; }
      this.calmLeft = this.calmSamples;
      this.windowMin = Infinity;
      this.windowLeft = this.windowSamples;
      this.skipWait = -1;
      this.started = false;
      return;
    }
    if (!this.started) return;
    if (this.skipWait >= 0) this.skipWait += n;
    this.calmLeft -= n;
    if (this.calmLeft <= 0) {
      this.calmLeft = this.calmSamples;
      if (this.target > this.minTarget) { this.target = Math.max(this.target - FRAME, this.minTarget); this.counts.decayed += 1; }
    }
    this.windowMin = Math.min(this.windowMin, this.buffered);
    this.windowLeft -= n;
    if (this.windowLeft <= 0) {
      if (this.windowMin >= this.target && this.skipWait < 0) this.skipWait = 0;
      this.windowMin = Infinity;
      this.windowLeft = this.windowSamples;
    }
  }
}

class PlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.buffer = new PlayoutBuffer((options && options.processorOptions) || {});
    this.ended = false;
    this.capture = false;
    this.captured = 0;  // samples handed back since capturing started
    this.rendered = 0;  // samples rendered since the start
    this.dryAt = -1;  // where the buffer ran dry (rendered samples), until playing resumes; else -1
    this.dryCapture = -1;  // the same in the capture (-1: not capturing then)
    const onMessage = (event) => {
      const data = event.data;
      if (data.port) {
        data.port.onmessage = onMessage;  // frames straight from the socket's worker
      } else if (data.frame) {
        this.buffer.push(data, Math.round(currentTime * sampleRate));
      } else if (data.capture !== undefined) {
        if (this.capture && !data.capture) {
          this.port.postMessage({captureEnded: {samples: this.captured, ...this.buffer.counts}});
        } else if (data.capture) {
          this.port.postMessage({captureStarted: {...this.buffer.counts}});
        }
        this.capture = data.capture;
        this.captured = 0;
        this.dryCapture = -1;
      } else if (data.ended) {
        this.ended = true;
      }
    };
    this.port.onmessage = onMessage;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const n = out.length;
    const b = this.buffer;
    const starts = [];
    let i = 0;
    const at = (k) => (this.capture ? this.captured + k : -1);
    if (!b.started && b.buffered >= b.target) {
      b.started = true;
      if (this.dryAt >= 0) {  // playing resumes after an underflow: the silence it inserted
        const samples = this.rendered - this.dryAt;
        b.counts.inserted += samples;
        this.port.postMessage({gap: {at: this.dryCapture, samples}});
        this.dryAt = this.dryCapture = -1;
      }
    }
    if (b.started) {
      while (i < n && b.queue.length) {
        const cut = b.skip();
        if (cut) {
          this.port.postMessage({skip: {seq: cut.seq, at: at(i), frame: cut.frame}});
          continue;
        }
        const head = b.queue[0];
        if (b.offset === 0) starts.push([head.seq, currentTime + i / sampleRate, at(i)]);
        const take = Math.min(n - i, head.frame.length - b.offset);
        out.set(head.frame.subarray(b.offset, b.offset + take), i);
        i += take;
        b.offset += take;
        b.buffered -= take;
        if (b.offset === head.frame.length) {
          b.queue.shift();
          b.offset = 0;
        }
      }
      const dry = i < n && !this.ended;
      b.account(n, dry);
      if (dry) {
        this.dryAt = this.rendered + i;
        this.dryCapture = at(i);
        this.port.postMessage({underflowAt: currentTime, at: this.dryCapture});
      }
      if (i < n) b.started = false;
    }
    out.fill(0, i);
    this.rendered += n;
    if (this.capture) this.captured += n;
    if (this.capture || starts.length) {
      this.port.postMessage({block: this.capture ? out.slice() : null, starts, buffered: b.buffered,
                             target: b.target, ...b.counts});
    }
    return true;
  }
}

class MicProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.out = this.port;
    this.port.onmessage = (event) => { if (event.data.port) this.out = event.data.port; };
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (input && input.length) this.out.postMessage(input.slice());
    return true;
  }
}

registerProcessor("ipcc-player", PlayerProcessor);
registerProcessor("ipcc-mic", MicProcessor);
