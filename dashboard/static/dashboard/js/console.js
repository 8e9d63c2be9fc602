// The call console: place a call, then talk over the live media socket
// (/api/v1/sessions/{sid}/calls/{cid}/media, same origin, authenticated by the login
// session). Microphone → capture worklet → 20 ms Float32 16 kHz binary frames → socket;
// socket binary frames → playback worklet (jitter buffer) → speakers.
//
// For tests and the curious, window.__sbConsole holds what the page sent and heard:
// per-frame RMS envelopes (50 a second), recent levels, frame counts, buffer reports.

import { csrfToken } from "./dashboard.js";
import { endReasonWords, formatPhone, stateWords } from "./wording.js";

const WIRE_RATE = 16000;
const ENVELOPE_LIMIT = 3000; // 60 s of 20 ms frames
// The server's playout buffer for our audio: a little absorbs network jitter; more is delay.
const TARGET_BUFFER_MS = 60;
const HIGH_BUFFER_MS = 200;

const root = document.getElementById("console");
const $ = (id) => document.getElementById(id);

const stats = {
  state: "idle",
  callId: null,
  sessionId: null,
  contextRate: null,
  sentFrames: 0,
  heardFrames: 0,
  micRms: 0,
  heardRms: 0,
  heardPeakRms: 0,
  playedRms: 0,
  bufferedMs: 0,
  bufferReports: 0,
  paused: false,
  skipFrames: 0,
  droppedFrames: 0,
  bufferHistory: [],
  playbackBufferedMs: 0,
  underruns: 0,
  errors: [],
  sentEnvelope: [],
  heardEnvelope: [],
  muted: false,
  ended: null,
};
window.__sbConsole = stats;

const micLevels = [];
let audio = null; // {context, stream, capture, playback, sink}
let socket = null;
let call = null; // the console data of the current call
let placedHere = false; // whether this page placed it (rather than joined it)
let timer = null;

function rms(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return Math.sqrt(sum / (samples.length || 1));
}

function remember(list, value) {
  list.push(value);
  if (list.length > ENVELOPE_LIMIT) list.shift();
}

function recent(list, count) {
  const tail = list.slice(-count);
  return tail.length ? Math.sqrt(tail.reduce((a, v) => a + v * v, 0) / tail.length) : 0;
}

function log(text, kind = "info") {
  const list = $("console-log");
  const item = document.createElement("li");
  item.className = `event ${kind}`;
  const time = document.createElement("time");
  time.textContent = new Date().toISOString().slice(11, 19);
  item.append(time, " ", text);
  list.prepend(item);
  while (list.children.length > 30) list.lastElementChild.remove();
}

function showState(snapshot) {
  stats.state = snapshot.state;
  stats.muted = Boolean(snapshot.audioMuted);
  const badge = $("console-state");
  badge.textContent = stateWords(snapshot.state)
    + (snapshot.endReason ? `: ${endReasonWords(snapshot.endReason)}` : "");
  badge.className = `badge state-${snapshot.state}`;
  const peer = $("console-peer");
  peer.textContent = snapshot.peerJid ? formatPhone(snapshot.peerJid) : "—";
  peer.title = snapshot.peerJid || "";
  const live = snapshot.state !== "ended";
  $("console-end").disabled = !live;
  const play = $("console-play");
  if (play) play.disabled = snapshot.state !== "active";
  const mute = $("console-mute");
  mute.disabled = snapshot.state !== "active";
  mute.textContent = stats.muted ? "Unmute" : "Mute";
  mute.setAttribute("aria-pressed", String(stats.muted));
  if (snapshot.answeredAt && live && !timer) {
    const answered = Date.parse(snapshot.answeredAt);
    timer = setInterval(() => {
      const seconds = Math.max(0, Math.floor((Date.now() - answered) / 1000));
      $("console-timer").textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    }, 500);
  }
}

function paintMeters() {
  $("mic-level").value = Math.min(1, stats.micRms * 4);
  $("mic-rms").textContent = stats.micRms.toFixed(3);
  $("heard-level").value = Math.min(1, stats.heardRms * 4);
  $("heard-rms").textContent = stats.heardRms.toFixed(3);
  $("buffer-level").value = stats.bufferedMs;
  $("buffer-ms").textContent = `${stats.bufferedMs} ms`;
  if (audio) requestAnimationFrame(paintMeters);
}

async function startAudio() {
  let context;
  try {
    // At 16 kHz the browser resamples the microphone and the speakers for us.
    context = new AudioContext({ sampleRate: WIRE_RATE, latencyHint: "interactive" });
  } catch {
    context = new AudioContext({ latencyHint: "interactive" });
  }
  stats.contextRate = context.sampleRate;
  await context.audioWorklet.addModule(root.dataset.workletUrl);
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: {
      channelCount: 1,
      echoCancellation: $("console-aec").checked,
      noiseSuppression: false,
      autoGainControl: false,
    },
  });
  const microphone = context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(context, "sb-capture", { numberOfOutputs: 1 });
  const sink = context.createGain();
  sink.gain.value = 0; // keeps the capture node pulled without playing the microphone back
  microphone.connect(capture).connect(sink).connect(context.destination);
  const playback = new AudioWorkletNode(context, "sb-playback", {
    numberOfInputs: 0,
    outputChannelCount: [1],
    processorOptions: { prebufferMs: 60, maxBufferMs: 400 },
  });
  playback.connect(context.destination);
  playback.port.onmessage = (event) => {
    stats.playedRms = event.data.playedRms;
    stats.playbackBufferedMs = event.data.bufferedMs;
    stats.underruns = event.data.underruns;
  };
  capture.port.onmessage = (event) => {
    const frame = event.data;
    const level = rms(frame);
    remember(micLevels, level);
    stats.micRms = recent(micLevels, 10);
    // Speech starts when the peer answers: nothing queues up while it rings. Past the
    // server's pause mark (clock drift, a stalled network) live audio is dropped, not
    // queued: a conversation wants low latency more than every 20 ms.
    if (stats.state !== "active" || !socket || socket.readyState !== WebSocket.OPEN) return;
    if (stats.paused || stats.skipFrames > 0) {
      stats.skipFrames = Math.max(0, stats.skipFrames - 1);
      stats.droppedFrames++;
      return;
    }
    socket.send(frame.buffer);
    remember(stats.sentEnvelope, level);
    stats.sentFrames++;
  };
  await context.resume();
  audio = { context, stream, capture, playback, sink };
  requestAnimationFrame(paintMeters);
}

function stopAudio() {
  if (!audio) return;
  for (const track of audio.stream.getTracks()) track.stop();
  audio.context.close();
  audio = null;
  stats.micRms = 0;
  stats.heardRms = 0;
  paintMeters();
}

function onText(message) {
  switch (message.type) {
    case "ready":
      log(`Media ready: ${message.media.encoding}, ${message.media.sampleRate} Hz.`);
      showState(message.call);
      break;
    case "call_state":
      showState(message.call);
      log(`Call ${stateWords(message.call.state).toLowerCase()}`
        + `${message.call.audioMuted ? " (muted)" : ""}.`);
      break;
    case "buffer":
      stats.bufferedMs = message.bufferedMs;
      stats.bufferReports++;
      remember(stats.bufferHistory, message.bufferedMs);
      if (message.bufferedMs >= message.pauseMs) stats.paused = true;
      else if (message.bufferedMs <= message.resumeMs) stats.paused = false;
      // Live speech should not wait in a queue: past HIGH_BUFFER_MS (a burst at the
      // start, a network stall) skip enough microphone frames to come back to the target.
      if (message.bufferedMs > HIGH_BUFFER_MS && stats.skipFrames === 0) {
        stats.skipFrames = Math.floor((message.bufferedMs - TARGET_BUFFER_MS) / 20);
      }
      $("buffer-level").max = message.capacityMs;
      $("buffer-level").high = message.pauseMs;
      break;
    case "error":
      stats.errors.push(message);
      log(`${message.code}: ${message.message}`, "error");
      break;
    case "ended":
      stats.ended = message.call;
      showState(message.call);
      log(`Call ended: ${endReasonWords(message.call.endReason)}.`);
      break;
    default:
      break;
  }
}

function openMedia(data) {
  call = data;
  stats.callId = data.call.callId;
  stats.sessionId = data.call.sessionId;
  stats.ended = null;
  showState(data.call);
  const detail = $("console-detail");
  detail.href = data.detailUrl;
  detail.hidden = false;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}${data.mediaPath}`);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("open", () => log("Media socket open."));
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") {
      onText(JSON.parse(event.data));
      return;
    }
    const samples = new Float32Array(event.data);
    const level = rms(samples);
    remember(stats.heardEnvelope, level);
    stats.heardFrames++;
    stats.heardRms = recent(stats.heardEnvelope, 10);
    stats.heardPeakRms = Math.max(stats.heardPeakRms, stats.heardRms);
    audio?.playback.port.postMessage(samples, [samples.buffer]);
  });
  socket.addEventListener("close", (event) => {
    log(`Media socket closed (${event.code}).`);
    socket = null;
    finish();
  });
}

function finish() {
  clearInterval(timer);
  timer = null;
  stopAudio();
  $("console-start").disabled = false;
  $("console-mute").disabled = true;
  $("console-end").disabled = true;
  if ($("console-play")) $("console-play").disabled = true;
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    body,
    credentials: "same-origin",
  });
  let payload = {};
  try { payload = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    throw new Error(payload.error?.detail || `The server answered ${response.status}.`);
  }
  return payload;
}

function showError(text) {
  const error = $("console-error");
  error.textContent = text;
  error.hidden = !text;
}

async function start(event) {
  event.preventDefault();
  showError("");
  const button = $("console-start");
  button.disabled = true;
  try {
    await startAudio();
    const form = new FormData($("console-form"));
    log("Calling…");
    const placed = await post(root.dataset.callUrl, form);
    placedHere = true;
    openMedia(placed);
  } catch (error) {
    showError(error.name === "NotAllowedError"
      ? "The browser did not allow the microphone; allow it and try again."
      : error.message);
    finish();
  }
}

async function join() {
  showError("");
  try {
    await startAudio();
    placedHere = false;
    openMedia(JSON.parse($("console-join-data").textContent));
    $("console-start").disabled = true;
  } catch (error) {
    showError(error.message);
    finish();
  }
}

async function toggleMute() {
  if (!call) return;
  const form = new FormData();
  if (!stats.muted) form.set("muted", "on");
  try {
    const reply = await post(call.muteUrl, form);
    showState(reply.call);
  } catch (error) {
    log(error.message, "error");
  }
}

async function playAsset() {
  if (!call) return;
  const form = new FormData();
  form.set("asset", $("console-asset").value);
  form.set("mode", "queue");
  try {
    await post(call.playUrl, form);
    log(`Playing ${$("console-asset").selectedOptions[0].textContent} into the call.`);
  } catch (error) {
    log(error.message, "error");
  }
}

// Closing the tab or leaving the page takes the microphone and the speakers with it, so
// the call this page placed ends too. A beacon is the one request a closing page can
// still send; it carries the CSRF token in its body, as it cannot set headers.
function hangUpOnLeave() {
  if (!call || !placedHere || stats.state === "ended") return;
  const form = new FormData();
  form.set("csrfmiddlewaretoken", csrfToken());
  form.set("session", call.call.sessionId);
  form.set("call", call.call.callId);
  navigator.sendBeacon(root.dataset.hangUpUrl, form);
}

async function end() {
  if (!call || !window.confirm("End this call?")) return;
  try {
    const reply = await post(call.endUrl, new FormData());
    showState(reply.call);
  } catch (error) {
    log(error.message, "error");
  }
}

if (root) {
  $("console-form").addEventListener("submit", start);
  $("console-join")?.addEventListener("click", join);
  $("console-mute").addEventListener("click", toggleMute);
  $("console-end").addEventListener("click", end);
  $("console-play")?.addEventListener("click", playAsset);
  window.addEventListener("pagehide", () => {
    hangUpOnLeave();
    socket?.close();
  });
}
