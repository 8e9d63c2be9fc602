// Every dashboard page: live updates from the event stream, confirmations, copy buttons,
// the environment switcher and uploads with progress. No framework beyond htmx.

import { endReasonWords, formatPhone, stateWords } from "./wording.js";

const EVENT_TYPES = [
  "session.created", "session.deleted", "connection.state", "auth.qr", "auth.paired",
  "auth.logged_out", "call.incoming", "call.state", "call.ended", "call.playback.started",
  "call.playback.finished", "call.stream.started", "call.stream.stopped",
  "call.stream.failed", "call.recording.ready", "asset.ready", "asset.failed",
];

export const live = { connected: false, events: [] };
window.__sbLive = live;

function emit(name, detail) {
  document.body.dispatchEvent(new CustomEvent(name, { detail }));
}

// One event becomes htmx triggers ("sb-call", "sb-call-<id>", …): parts of the page listen
// with hx-trigger="sb-call from:body" and fetch their fresh fragment once.
function dispatch(envelope) {
  live.events.push(envelope);
  if (live.events.length > 200) live.events.shift();
  const type = envelope.type;
  const data = envelope.data || {};
  emit("sb-event", envelope);
  if (type.startsWith("call.")) {
    emit("sb-call", envelope);
    if (data.callId) emit(`sb-call-${data.callId}`, envelope);
  } else if (type.startsWith("asset.")) {
    emit("sb-asset", envelope);
  } else {
    emit("sb-session", envelope);
  }
  if (envelope.sessionId) emit(`sb-session-${envelope.sessionId}`, envelope);
  if (data.call) showAttached(data.call);
  prependEvent(envelope);
}

// What a live call page says of the snapshot's `transport` (call_panel.html writes the
// same words); set at once from the event, before the panel's own refresh arrives.
const ATTACHED = { websocket: "Client socket attached", stream: "Dial-out stream attached" };

function showAttached(call) {
  const transport = call.state !== "ended" && ATTACHED[call.transport] ? call.transport : "none";
  const selector = `[data-call-transport="${CSS.escape(call.callId || "")}"]`;
  for (const element of document.querySelectorAll(selector)) {
    element.textContent = ATTACHED[transport] || "No client attached";
    element.className = `attached attached-${transport}`;
  }
}

function summary(envelope) {
  const data = envelope.data || {};
  if (data.call) {
    const muted = data.call.audioMuted && data.call.state !== "ended" ? " (muted)" : "";
    const reason = data.call.endReason ? ` (${endReasonWords(data.call.endReason)})` : muted;
    const state = stateWords(data.call.state).toLowerCase();
    return `${formatPhone(data.call.peerJid)} ${state}${reason}`;
  }
  if (envelope.type === "auth.qr") return "new pairing QR";
  if (data.connectionState) return data.connectionState;
  if (data.phoneJid) return `paired as ${formatPhone(data.phoneJid)}`;
  if (data.session) return data.session.displayName || "";
  if (data.filename) return `${data.filename} ${data.status || ""}`;
  if (data.recordingId) return `${data.kind} recording`;
  return "";
}

function prependEvent(envelope) {
  const list = document.querySelector("[data-live-events]");
  if (!list) return;
  list.querySelector(".empty")?.remove();
  const item = document.createElement("li");
  item.className = "event fresh";
  const time = document.createElement("time");
  time.dateTime = envelope.createdAt;
  time.textContent = new Date(envelope.createdAt).toISOString().slice(11, 19);
  const type = document.createElement("code");
  type.className = "event-type";
  type.textContent = envelope.type;
  const text = document.createElement("span");
  text.className = "event-summary";
  text.textContent = summary(envelope);
  item.append(time, " ", type, " ", text);
  list.prepend(item);
  const max = Number(list.dataset.max || 50);
  while (list.children.length > max) list.lastElementChild.remove();
}

function connectEvents() {
  const url = document.body.dataset.eventsUrl;
  if (!url || !window.EventSource) return;
  const indicator = document.getElementById("live-indicator");
  const source = new EventSource(url);
  const show = (connected) => {
    live.connected = connected;
    if (indicator) {
      indicator.textContent = connected ? "live updates on" : "live updates: reconnecting…";
      indicator.classList.toggle("on", connected);
    }
  };
  source.addEventListener("open", () => show(true));
  source.addEventListener("error", () => show(false));
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (message) => {
      try {
        dispatch(JSON.parse(message.data));
      } catch (error) {
        console.warn("Unreadable event", error);
      }
    });
  }
  window.addEventListener("pagehide", () => source.close());
}

function wireConfirmations() {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  }, true);
}

function wireSwitcher() {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
}

function wireCopyButtons() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const field = document.querySelector(button.dataset.copy);
    if (!field) return;
    try {
      await navigator.clipboard.writeText(field.value);
    } catch {
      field.select();
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  });
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || "";
}

function wireUploads() {
  for (const form of document.querySelectorAll("form[data-upload]")) {
    const progress = form.querySelector("progress");
    const status = form.querySelector("[role=status]");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = form.querySelector("input[type=file]");
      if (!input.files.length) {
        status.textContent = "Choose an audio file to upload.";
        status.classList.add("error-text");
        return;
      }
      const request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.setRequestHeader("Accept", "application/json");
      request.setRequestHeader("X-CSRFToken", csrfToken());
      progress.hidden = false;
      progress.value = 0;
      status.classList.remove("error-text");
      status.textContent = "Uploading…";
      request.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
      });
      request.addEventListener("load", () => {
        let body = {};
        try { body = JSON.parse(request.responseText); } catch { /* an HTML error page */ }
        if (request.status === 201) {
          progress.value = 100;
          status.textContent = `Uploaded ${body.asset.filename}: ${body.asset.status}.`;
          form.reset();
          emit("sb-uploaded", body.asset);
        } else {
          status.classList.add("error-text");
          status.textContent = body.error?.detail || `Upload failed (HTTP ${request.status}).`;
        }
      });
      request.addEventListener("error", () => {
        status.classList.add("error-text");
        status.textContent = "Upload failed: the connection was lost.";
      });
      request.send(new FormData(form));
    });
  }
}

wireConfirmations();
wireSwitcher();
wireCopyButtons();
wireUploads();
connectEvents();
