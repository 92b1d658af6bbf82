// clipedit review: live fragments, two players kept in step, the wipe view, the keyboard.
"use strict";

function refreshLive(box) {
  const every = Number(box.dataset.every || 2000);
  let busy = false;
  setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(box.dataset.fragment, {headers: {"accept": "text/html"}, credentials: "same-origin"});
      if (!response.ok) return;
      const html = await response.text();
      const checked = box.dataset.keepChecked ?
        new Set([...box.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value)) : null;
      box.innerHTML = html;
      if (checked) box.querySelectorAll("input[type=checkbox]").forEach((c) => { c.checked = checked.has(c.value); });
      const status = box.querySelector("#job-status");
      if (box.dataset.reloadWhenTerminal && status &&
          ["SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "CANCELLED"].includes(status.textContent.trim())) {
        location.reload();  // the players and actions appear once the job has finished
      }
    } finally {
      busy = false;
    }
  }, every);
}

function syncPlayers(source, output) {
  const players = [source, output];
  const other = (p) => (p === source ? output : source);
  let driving = null;  // the element whose own event is being mirrored, so mirrors do not echo
  for (const player of players) {
    player.addEventListener("play", () => { if (driving !== other(player) && other(player).paused) { driving = player; other(player).play().catch(() => {}); driving = null; } });
    player.addEventListener("pause", () => { if (driving !== other(player) && !other(player).paused) { driving = player; other(player).pause(); driving = null; } });
    player.addEventListener("seeked", () => {
      if (Math.abs(other(player).currentTime - player.currentTime) > 0.04) other(player).currentTime = player.currentTime;
    });
  }
  // While playing, the edited clip follows the source: a drift over 50 ms is corrected.
  source.addEventListener("timeupdate", () => {
    if (!source.paused && Math.abs(output.currentTime - source.currentTime) > 0.05) output.currentTime = source.currentTime;
    const scrub = document.getElementById("scrub");
    const clock = document.getElementById("clock");
    if (scrub && source.duration) scrub.value = Math.round(1000 * source.currentTime / source.duration);
    if (clock) clock.textContent = source.currentTime.toFixed(2) + " s";
  });
  window.clipeditPlayers = {
    playBoth() { if (source.paused) { source.play().catch(() => {}); output.play().catch(() => {}); } else { source.pause(); output.pause(); } },
    seek(seconds) { source.currentTime = seconds; output.currentTime = seconds; },
  };
  document.getElementById("play-both")?.addEventListener("click", () => window.clipeditPlayers.playBoth());
  document.getElementById("scrub")?.addEventListener("input", (e) => {
    if (source.duration) window.clipeditPlayers.seek(source.duration * e.target.value / 1000);
  });
}

function wipeView(source) {
  const box = document.getElementById("wipe");
  const before = document.getElementById("wipe-before");
  const after = document.getElementById("wipe-after");
  const slider = document.getElementById("wipe-slider");
  const line = document.getElementById("wipe-line");
  const cut = () => {
    after.style.clipPath = `inset(0 0 0 ${slider.value}%)`;
    line.style.left = slider.value + "%";
  };
  document.getElementById("wipe-toggle").addEventListener("click", () => {
    box.hidden = !box.hidden;
    if (!box.hidden) { before.currentTime = source.currentTime; after.currentTime = source.currentTime; cut(); }
  });
  slider.addEventListener("input", cut);
}

function keyboard() {
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select, button");
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const head = document.querySelector(".jobhead");
    if (event.key === "j" && head?.dataset.next) location.href = "/jobs/" + head.dataset.next;
    else if (event.key === "k" && head?.dataset.prev) location.href = "/jobs/" + head.dataset.prev;
    else if (event.key === "a") document.getElementById("approve-form")?.requestSubmit();
    else if (event.key === "r") document.getElementById("reject-form")?.requestSubmit();
    else if (event.key === " " && window.clipeditPlayers) { event.preventDefault(); window.clipeditPlayers.playBoth(); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-fragment]").forEach(refreshLive);
  const source = document.getElementById("source");
  const output = document.getElementById("output");
  if (source && output) { syncPlayers(source, output); wipeView(source); }
  keyboard();
});
