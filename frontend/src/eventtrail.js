// Event Trail's browser script: records the registered browser and video event types of one page
// view and sends them in batches to the collector. It reads its config from the JSON block that
// {% eventtrail_script %} renders; without that block (tracking refused) it does nothing.

const QUARTILES = [25, 50, 75, 100];
const RESIZE_DEBOUNCE_MS = 500;
const FLUSH_DELAY_MS = 2000;
const VIDEO_ATTRIBUTE = "data-eventtrail-video";

function readConfig(doc) {
  const block = doc.getElementById("eventtrail-config");
  if (!block) return null;
  try {
    const config = JSON.parse(block.textContent || "");
    return config && config.endpoint && config.token && Array.isArray(config.types) ? config : null;
  } catch (error) {
    return null;
  }
}

function trackingRefused(config, nav, win) {
  const dnt = nav.doNotTrack === "1" || nav.doNotTrack === "yes" || win.doNotTrack === "1";
  return (config.dnt && dnt) || (config.gpc && nav.globalPrivacyControl === true);
}

// Percent of the page seen so far: the bottom of the viewport over the document's height.
function scrollPercent(win, doc) {
  const root = doc.documentElement;
  const height = Math.max(root.scrollHeight, doc.body ? doc.body.scrollHeight : 0);
  if (height <= 0) return 100;
  return ((win.scrollY || root.scrollTop || 0) + win.innerHeight) / height * 100;
}

function round(seconds) {
  return Number.isFinite(seconds) ? Math.round(seconds * 1000) / 1000 : 0;
}

function start(win, doc, nav) {
  const config = readConfig(doc);
  if (!config || trackingRefused(config, nav, win)) return;
  const allowed = new Set(config.types);
  const maxEvents = config.maxEvents || 50;
  let queue = [];
  let flushTimer = 0;

  function send(batch) {
    const now = Date.now();
    const body = JSON.stringify({
      token: config.token,
      events: batch.map((e) => ({ type: e.type, fields: e.fields, age: Math.max(0, now - e.at) })),
    });
    let queued = false;
    if (nav.sendBeacon) {
      try {
        queued = nav.sendBeacon(config.endpoint, new Blob([body], { type: "text/plain;charset=UTF-8" }));
      } catch (error) {
        queued = false;
      }
    }
    if (!queued && win.fetch) {
      win.fetch(config.endpoint, {
        method: "POST",
        body,
        keepalive: true,
        credentials: "same-origin",
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
      }).catch(() => {});
    }
  }

  function flush() {
    if (flushTimer) {
      win.clearTimeout(flushTimer);
      flushTimer = 0;
    }
    while (queue.length) send(queue.splice(0, maxEvents));
  }

  function record(type, fields) {
    if (!allowed.has(type)) return;
    queue.push({ type, fields, at: Date.now() });
    if (queue.length >= maxEvents) flush();
    else if (!flushTimer) flushTimer = win.setTimeout(flush, FLUSH_DELAY_MS);
  }

  // Scroll depth: each quartile once per page view.
  const depths = new Set();
  let scrollPending = false;
  function checkScroll() {
    scrollPending = false;
    const percent = scrollPercent(win, doc);
    for (const depth of QUARTILES) {
      // Half a percent of slack: sub-pixel layouts rarely reach exactly 100.
      if (!depths.has(depth) && percent + 0.5 >= depth) {
        depths.add(depth);
        record("browser.scroll", { "eventtrail.browser.scroll_depth": depth });
      }
    }
  }
  win.addEventListener("scroll", () => {
    if (!scrollPending) {
      scrollPending = true;
      win.requestAnimationFrame(checkScroll);
    }
  }, { passive: true });

  // Resize, debounced: one event once the window has stopped changing.
  let resizeTimer = 0;
  win.addEventListener("resize", () => {
    win.clearTimeout(resizeTimer);
    resizeTimer = win.setTimeout(() => {
      record("browser.resize", {
        "eventtrail.browser.viewport.width": Math.round(win.innerWidth),
        "eventtrail.browser.viewport.height": Math.round(win.innerHeight),
      });
    }, RESIZE_DEBOUNCE_MS);
  });

  // Visibility: time on page counts only while the page is visible.
  let hidden = doc.visibilityState === "hidden";
  let visibleSince = Date.now();
  let visibleMs = 0;
  function hide() {
    if (hidden) {
      flush();
      return;
    }
    hidden = true;
    visibleMs += Date.now() - visibleSince;
    record("browser.visibility", {
      "eventtrail.browser.visibility": "hidden",
      "eventtrail.browser.time_on_page": visibleMs,
    });
    flush();
  }
  function show() {
    if (!hidden) return;
    hidden = false;
    visibleSince = Date.now();
    record("browser.visibility", {
      "eventtrail.browser.visibility": "visible",
      "eventtrail.browser.time_on_page": visibleMs,
    });
  }
  doc.addEventListener("visibilitychange", () => {
    if (doc.visibilityState === "hidden") hide();
    else show();
  });
  win.addEventListener("pagehide", hide);
  win.addEventListener("pageshow", (event) => {
    if (event.persisted) show();
  });

  // HTML5 video: media events do not bubble, so listen in the capture phase on the document;
  // that also covers videos added after load.
  const progress = new WeakMap();
  function videoOf(event) {
    const target = event.target;
    if (!target || target.tagName !== "VIDEO") return null;
    const id = target.getAttribute(VIDEO_ATTRIBUTE);
    return id ? { video: target, id } : null;
  }
  function videoFields(video, id) {
    return {
      "eventtrail.video.id": id,
      "eventtrail.video.position": round(video.currentTime),
      "eventtrail.video.duration": round(video.duration),
    };
  }
  function quartiles(video, id) {
    if (!Number.isFinite(video.duration) || video.duration <= 0) return;
    let reached = progress.get(video);
    if (!reached) {
      reached = new Set();
      progress.set(video, reached);
    }
    const percent = video.ended ? 100 : video.currentTime / video.duration * 100;
    for (const quartile of QUARTILES) {
      if (!reached.has(quartile) && percent + 0.5 >= quartile) {
        reached.add(quartile);
        record("video.progress", { ...videoFields(video, id), "eventtrail.video.progress": quartile });
      }
    }
  }
  const handlers = {
    play: "video.play",
    pause: "video.pause",
    seeked: "video.seek",
    ended: "video.ended",
  };
  for (const [name, action] of Object.entries(handlers)) {
    doc.addEventListener(name, (event) => {
      const found = videoOf(event);
      if (!found) return;
      // Reaching the end pauses the video too; that pause is the end, not a choice.
      if (name === "pause" && found.video.ended) return;
      if (name === "ended" || name === "seeked") quartiles(found.video, found.id);
      record(action, videoFields(found.video, found.id));
    }, true);
  }
  doc.addEventListener("timeupdate", (event) => {
    const found = videoOf(event);
    if (found) quartiles(found.video, found.id);
  }, true);
}

if (typeof window !== "undefined" && typeof document !== "undefined") {
  start(window, document, navigator);
}
