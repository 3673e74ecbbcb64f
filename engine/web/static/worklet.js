// AudioWorklet processors of the softphone page, in an AudioContext at 8000 Hz.
// "ipcc-player": plays the call's 20 ms frames posted by the page ({seq, frame: Float32Array}); starts (and
// restarts after running dry, one frame deeper each time, up to `maxPrefill`) with `prefill` samples queued; counts underflows; reports for each frame the
// context time at which its first sample is output, and, while capturing, hands every rendered block back.
// "ipcc-mic": hands every block of its input (the microphone) on (to the socket's worker, given a port).
// Frames come on the node's port or on a port handed over ({port}), straight from the socket's worker.
class PlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.prefill = opts.prefill || 480;
    this.maxPrefill = Math.max(opts.maxPrefill || 1600, this.prefill);
    this.queue = [];
    this.offset = 0;
    this.buffered = 0;
    this.started = false;
    this.ended = false;
    this.underflows = 0;
    this.capture = false;
    const onMessage = (event) => {
      const data = event.data;
      if (data.port) {
        data.port.onmessage = onMessage;  // frames straight from the socket's worker
      } else if (data.frame) {
        this.queue.push(data);
        this.buffered += data.frame.length;
      } else if (data.capture !== undefined) {
        this.capture = data.capture;
      } else if (data.ended) {
        this.ended = true;
      }
    };
    this.port.onmessage = onMessage;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const n = out.length;
    const starts = [];
    let i = 0;
    if (!this.started && this.buffered >= this.prefill) this.started = true;
    if (this.started) {
      while (i < n && this.queue.length) {
        const head = this.queue[0];
        if (this.offset === 0) starts.push([head.seq, currentTime + i / sampleRate]);
        const take = Math.min(n - i, head.frame.length - this.offset);
        out.set(head.frame.subarray(this.offset, this.offset + take), i);
        i += take;
        this.offset += take;
        this.buffered -= take;
        if (this.offset === head.frame.length) {
          this.queue.shift();
          this.offset = 0;
        }
      }
      if (i < n) {
        if (!this.ended) {
          this.underflows += 1;
          this.prefill = Math.min(this.prefill + 160, this.maxPrefill);  // ran dry: a deeper buffer from now on
          this.port.postMessage({underflowAt: currentTime});
        }
        this.started = false;
      }
    }
    out.fill(0, i);
    if (this.capture || starts.length) {
      this.port.postMessage({block: this.capture ? out.slice() : null, starts,
                             underflows: this.underflows, buffered: this.buffered});
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
