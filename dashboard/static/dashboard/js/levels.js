// A live call's input and output levels: polled while the call view shows a live call
// (the panel it sits in is swapped by htmx, so the meters are looked up on each poll).

const EVERY_MS = 500;
const FLOOR_DB = -60;

function show(box, levels) {
  for (const key of ["inputDbfs", "outputDbfs"]) {
    const db = Math.max(FLOOR_DB, levels[key]);
    const meter = box.querySelector(`[data-level="${key}"]`);
    const text = box.querySelector(`[data-level-text="${key}"]`);
    if (meter) meter.value = db;
    if (text) text.textContent = levels[key] <= -90 ? "silent" : `${levels[key].toFixed(0)} dBFS`;
  }
}

async function poll() {
  const box = document.querySelector("[data-levels-url]");
  if (!box || document.hidden) return;
  try {
    const response = await fetch(box.dataset.levelsUrl, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const levels = await response.json();
    if (levels.live) show(box, levels);
  } catch {
    // The next poll tries again.
  }
}

setInterval(poll, EVERY_MS);
poll();
