// Audio worklets of the call console. `sampleRate` is the AudioContext's rate; the media
// socket speaks 16 kHz mono Float32, so both directions resample when the rates differ
// (linear interpolation: plenty for a voice console, and nothing to allocate per block).

const WIRE_RATE = 16000;
const FRAME = 320; // 20 ms at 16 kHz

// Microphone → 20 ms Float32 frames at 16 kHz, posted (transferred) to the page.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / WIRE_RATE; // input samples per output sample
    this.position = 0; // next output's position, in input samples from this block's start
    this.previous = 0; // the last input sample of the previous block
    this.frame = new Float32Array(FRAME);
    this.filled = 0;
  }

  push(value) {
    this.frame[this.filled++] = value;
    if (this.filled === FRAME) {
      this.port.postMessage(this.frame, [this.frame.buffer]);
      this.frame = new Float32Array(FRAME);
      this.filled = 0;
    }
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    if (this.step === 1) {
      for (let i = 0; i < input.length; i++) this.push(input[i]);
      return true;
    }
    // Positions run from -1 (the previous block's last sample) to input.length - 1.
    let t = this.position;
    while (t < input.length - 1) {
      const i = Math.floor(t);
      const f = t - i;
      const a = i < 0 ? this.previous : input[i];
      const b = input[i + 1];
      this.push(a + (b - a) * f);
      t += this.step;
    }
    this.position = t - input.length;
    this.previous = input[input.length - 1];
    return true;
  }
}

// The peer's 16 kHz frames → the speakers, through a small jitter buffer: playback starts
// once `prebufferMs` is queued, restarts the same way after an underrun, and drops the
// oldest audio past `maxBufferMs` so latency cannot grow without bound.
class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.ring = new Float32Array(WIRE_RATE * 2);
    this.read = 0; // fractional read position (in wire samples), modulo ring length
    this.buffered = 0; // wire samples available
    this.prebuffer = ((opts.prebufferMs || 60) * WIRE_RATE) / 1000;
    this.max = ((opts.maxBufferMs || 400) * WIRE_RATE) / 1000;
    this.step = WIRE_RATE / sampleRate; // wire samples per output sample
    this.playing = false;
    this.underruns = 0;
    this.dropped = 0;
    this.sumSquares = 0;
    this.count = 0;
    this.reportEvery = Math.round(sampleRate / 10); // ~100 ms
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.buffered = 0;
        this.playing = false;
        return;
      }
      this.write(event.data);
    };
  }

  write(samples) {
    const ring = this.ring;
    const size = ring.length;
    let write = (Math.floor(this.read) + this.buffered) % size;
    for (let i = 0; i < samples.length; i++) {
      ring[write] = samples[i];
      write = (write + 1) % size;
    }
    this.buffered += samples.length;
    const excess = this.buffered - Math.min(this.max, size - 2);
    if (excess > 0) {
      this.read = (this.read + excess) % size;
      this.buffered -= excess;
      this.dropped += excess;
    }
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const size = this.ring.length;
    if (!this.playing && this.buffered >= this.prebuffer) this.playing = true;
    for (let n = 0; n < out.length; n++) {
      let value = 0;
      if (this.playing) {
        if (this.buffered < 2) {
          this.playing = false;
          this.underruns++;
        } else {
          const i = Math.floor(this.read);
          const f = this.read - i;
          const a = this.ring[i % size];
          const b = this.ring[(i + 1) % size];
          value = a + (b - a) * f;
          const next = this.read + this.step;
          this.buffered -= Math.floor(next) - i;
          this.read = next % size;
        }
      }
      out[n] = value;
      this.sumSquares += value * value;
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.count += out.length;
    if (this.count >= this.reportEvery) {
      this.port.postMessage({
        playedRms: Math.sqrt(this.sumSquares / this.count),
        bufferedMs: (this.buffered * 1000) / WIRE_RATE,
        underruns: this.underruns,
        droppedMs: (this.dropped * 1000) / WIRE_RATE,
      });
      this.sumSquares = 0;
      this.count = 0;
    }
    return true;
  }
}

registerProcessor("sb-capture", CaptureProcessor);
registerProcessor("sb-playback", PlaybackProcessor);
