// The operator console's only script: keeps an open channel page current.
// Every second it asks /console/channels/<name>/state; when the channel's generation moved,
// it replaces the state and timeline (HTML the server rendered and escaped) and says the page
// changed. The forms keep the generation they were rendered at, so acting on a page older
// than the channel is refused by the server ("changed since you loaded it"), never applied.
"use strict";

(function () {
  const POLL_MS = 1000;

  function follow(live) {
    const url = live.dataset.stateUrl;
    const loaded = live.dataset.generation;
    const banner = document.getElementById("changed");

    async function poll() {
      try {
        const response = await fetch(url, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
          cache: "no-store",
        });
        if (response.status === 401) {
          return; // signed out (key revoked, session expired): stop; the next click says so
        }
        if (response.ok) {
          const state = await response.json();
          if (String(state.generation) !== live.dataset.generation) {
            live.innerHTML = state.html;
            live.dataset.generation = String(state.generation);
          }
          if (banner) {
            banner.hidden = String(state.generation) === loaded;
          }
        }
      } catch (error) {
        // The gateway is restarting or the network blinked: try again at the next tick.
      }
      window.setTimeout(poll, POLL_MS);
    }

    window.setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const live = document.getElementById("live");
    if (live && live.dataset.stateUrl) {
      follow(live);
    }
  });
})();
