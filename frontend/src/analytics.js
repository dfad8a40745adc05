// Event Trail analytics pages: draws each panel's chart with Chart.js and keeps the figures
// live by polling the page's JSON with If-None-Match (a 304 costs almost nothing).
import {
  ArcElement, BarController, BarElement, CategoryScale, Chart, DoughnutController, Legend,
  LinearScale, LineController, LineElement, PointElement, Tooltip,
} from "chart.js";

Chart.register(ArcElement, BarController, BarElement, CategoryScale, DoughnutController, Legend,
  LinearScale, LineController, LineElement, PointElement, Tooltip);

const COLOURS = ["#0b5cad", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7f8a",
  "#59636e"];

function config(spec) {
  const doughnut = spec.type === "doughnut";
  const datasets = spec.datasets.map((set, i) => ({
    label: set.label,
    data: set.data,
    backgroundColor: doughnut ? spec.labels.map((_, j) => COLOURS[j % COLOURS.length])
      : COLOURS[i % COLOURS.length],
    borderColor: doughnut ? "#fff" : COLOURS[i % COLOURS.length],
    borderWidth: spec.type === "line" ? 2 : 1,
    pointRadius: spec.type === "line" ? 2 : 0,
    tension: 0.2,
    // A series of another scale (events beside active users) gets the right-hand axis.
    yAxisID: set.axis === "right" ? "y1" : "y",
  }));
  const right = spec.datasets.filter((set) => set.axis === "right");
  const options = {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    interaction: { mode: doughnut ? "nearest" : "index", intersect: false },
    plugins: { legend: { display: doughnut || datasets.length > 1, position: "bottom" },
      tooltip: { enabled: true } },
  };
  if (!doughnut) {
    options.indexAxis = spec.horizontal ? "y" : "x";
    options.scales = {
      x: { stacked: spec.stacked, ticks: { autoSkip: true, maxRotation: 0 } },
      y: { stacked: spec.stacked, beginAtZero: true, ticks: { autoSkip: true } },
    };
    if (right.length && !spec.horizontal) {
      const title = (sets) => ({ display: true, text: sets.map((set) => set.label).join(", ") });
      options.scales.y.title = title(spec.datasets.filter((set) => set.axis !== "right"));
      options.scales.y1 = { position: "right", beginAtZero: true, stacked: spec.stacked,
        grid: { drawOnChartArea: false }, ticks: { autoSkip: true }, title: title(right) };
    }
    if (spec.horizontal) {
      options.scales.y.ticks.callback = function (value) {
        const text = this.getLabelForValue(value);
        return text.length > 24 ? text.slice(0, 23) + "…" : text;
      };
    }
  }
  return { type: spec.type, data: { labels: spec.labels, datasets }, options };
}

function cell(value) {
  const td = document.createElement("td");
  if (value && typeof value === "object") {
    if (value.href) {
      const a = document.createElement("a");
      a.href = value.href;
      a.textContent = value.text;
      td.appendChild(a);
    } else {
      td.textContent = value.text;
    }
  } else {
    td.textContent = value === null || value === undefined ? "" : String(value);
  }
  return td;
}

function fillTable(panelEl, table) {
  const body = panelEl.querySelector("tbody");
  if (!body) return;
  body.replaceChildren();
  if (!table.rows.length) {
    const tr = document.createElement("tr");
    const td = cell("No data in this period.");
    td.colSpan = table.headers.length;
    tr.appendChild(td);
    body.appendChild(tr);
    return;
  }
  for (const row of table.rows) {
    const tr = document.createElement("tr");
    row.forEach((value) => tr.appendChild(cell(value)));
    body.appendChild(tr);
  }
}

function start(root) {
  const charts = new Map();
  let etag = root.dataset.etag || null;
  let lastOk = Date.now();
  let version = 0;
  let period = (root.querySelector(".et-period select") || {}).value || "";

  function draw(panels) {
    for (const panel of panels) {
      const el = root.querySelector(`[data-panel="${panel.id}"]`);
      if (!el) continue;
      fillTable(el, panel.table);
      const canvas = el.querySelector("canvas");
      if (!panel.chart || !canvas) continue;
      const existing = charts.get(panel.id);
      if (existing && existing.config.type === panel.chart.type) {
        const next = config(panel.chart);
        existing.data.labels = next.data.labels;
        existing.data.datasets = next.data.datasets;
        existing.update();
      } else {
        if (existing) existing.destroy();
        charts.set(panel.id, new Chart(canvas, config(panel.chart)));
      }
      el.dataset.points = String(panel.chart.datasets.reduce((n, d) => n + d.data.length, 0));
    }
  }

  function stamp(payload) {
    const newest = root.querySelector("[data-newest]");
    if (newest) {
      newest.dateTime = payload.newest || "";
      newest.textContent = payload.newest ? payload.newest.slice(0, 19) : "none yet";
    }
    const generated = root.querySelector("[data-generated]");
    if (generated) {
      generated.dateTime = payload.generated;
      generated.textContent = payload.generated.slice(0, 19) + " UTC";
    }
    const events = root.querySelector("[data-events]");
    if (events) events.textContent = String(payload.events);
  }

  function tick() {
    const ago = root.querySelector("[data-ago]");
    if (ago) ago.textContent = `Updated ${Math.round((Date.now() - lastOk) / 1000)} s ago.`;
  }

  async function poll() {
    const url = new URL(root.dataset.url, window.location.href);
    if (period) url.searchParams.set("period", period);
    const headers = etag ? { "If-None-Match": etag } : {};
    try {
      const response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
      if (response.status === 304) {
        lastOk = Date.now();
      } else if (response.ok) {
        const payload = await response.json();
        etag = response.headers.get("ETag");
        lastOk = Date.now();
        draw(payload.panels);
        stamp(payload);
        version += 1;
        root.dataset.version = String(version);
      }
    } catch (error) {
      // Offline or the server restarting: the figures stay, "updated ... ago" keeps counting.
    }
    tick();
  }

  const initial = JSON.parse(document.getElementById("et-analytics-data").textContent);
  draw(initial.panels);
  // With charts drawn, long tables fold away; they stay one click from view.
  root.querySelectorAll("details.et-table").forEach((d) => { d.open = false; });
  root.dataset.charts = String(charts.size);
  root.etCharts = charts; // for tests and for sites that want to extend the charts

  const form = root.querySelector(".et-period");
  if (form) {
    form.addEventListener("change", () => {
      period = form.querySelector("select").value;
      const here = new URL(window.location.href);
      here.searchParams.set("period", period);
      window.history.replaceState(null, "", here);
      etag = null;
      poll();
    });
  }
  setInterval(poll, Number(root.dataset.poll) || 5000);
  setInterval(tick, 1000);
  tick();
}

document.querySelectorAll(".et-analytics").forEach(start);
