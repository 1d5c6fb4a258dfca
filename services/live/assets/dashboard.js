// The Quire live dashboard: reads /api/v1/dashboard every few seconds and draws it with
// Chart.js. The page's state is on <body data-state> (loading, ready, error) and the hourly
// chart's on #hourly-chart's data attributes, for people and for the browser test alike.
"use strict";

const REFRESH_MS = 5000;
const LIVE = "#e8590c";
const CLOSED = "#3b5bdb";
const PALETTE = ["#3b5bdb", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#1098ad", "#d6336c", "#495057"];

const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
const money2 = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });
const count = new Intl.NumberFormat("en-US");
const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + " %");
const orDash = (x, f) => (x === null || x === undefined ? "–" : f(x));
const hourLabel = (iso) => iso.slice(11, 13) + ":00";
const when = (iso) => (iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, "").replace(/Z$/, "") + " UTC" : "–");

const charts = {};

function chart(id, config) {
  if (!charts[id]) {
    charts[id] = new Chart(document.getElementById(id), config);
  } else {
    charts[id].data = config.data;
    charts[id].update("none");
  }
  return charts[id];
}

function barConfig(labels, values, colors, opts = {}) {
  return {
    type: "bar",
    data: { labels, datasets: [{ data: values, backgroundColor: colors, borderRadius: 3 }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      indexAxis: opts.horizontal ? "y" : "x",
      plugins: { legend: { display: false }, tooltip: { callbacks: opts.tooltip || {} } },
      scales: opts.scales || {},
    },
  };
}

function doughnutConfig(map) {
  const labels = Object.keys(map || {});
  return {
    type: "doughnut",
    data: { labels, datasets: [{ data: labels.map((k) => map[k]), backgroundColor: PALETTE }] },
    options: { animation: false, maintainAspectRatio: false, plugins: { legend: { position: "right" } } },
  };
}

function tiles(id, items) {
  const el = document.getElementById(id);
  el.replaceChildren(
    ...items.map(([label, value]) => {
      const t = document.createElement("div");
      t.className = "tile";
      const l = document.createElement("div");
      l.className = "label";
      l.textContent = label;
      const v = document.createElement("div");
      v.className = "value";
      v.textContent = value;
      t.append(l, v);
      return t;
    }),
  );
}

function drawHourly(hours) {
  const canvas = document.getElementById("hourly-chart");
  const labels = hours.map((h) => (h.live ? hourLabel(h.hour) + " (live)" : hourLabel(h.hour)));
  chart(
    "hourly-chart",
    barConfig(
      labels,
      hours.map((h) => h.value),
      hours.map((h) => (h.live ? LIVE : CLOSED)),
      {
        tooltip: {
          title: (items) => hours[items[0].dataIndex].hour,
          label: (item) => {
            const h = hours[item.dataIndex];
            return h.live ? "live GMV " + money2.format(h.gmv) : "net GMV " + money2.format(h.net_gmv) + " (GMV " + money2.format(h.gmv) + ")";
          },
        },
        scales: { y: { beginAtZero: true, ticks: { callback: (v) => money.format(v) } } },
      },
    ),
  );
  canvas.dataset.bars = String(hours.length);
  canvas.dataset.liveBars = hours.filter((h) => h.live).map((h) => h.hour).join(",");
  const body = document.querySelector("#hourly-table tbody");
  body.replaceChildren(
    ...hours.map((h) => {
      const tr = document.createElement("tr");
      if (h.live) tr.className = "live";
      for (const text of [h.hour, money2.format(h.gmv), money2.format(h.net_gmv), h.live ? "live" : ""]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
}

function bookLabel(b) {
  const t = b.title || b.book_id;
  return t.length > 38 ? t.slice(0, 36) + "…" : t;
}

function drawToday(today) {
  document.getElementById("today-date").textContent = today ? today.date : "–";
  const k = today && today.kpis;
  if (!k) {
    tiles("kpi-tiles", [["no sessions or orders yet today", "–"]]);
    tiles("site-tiles", []);
  } else {
    tiles("kpi-tiles", [
      ["GMV", money.format(k.gmv)],
      ["net GMV", money.format(k.net_gmv)],
      ["orders", count.format(k.orders)],
      ["AOV", orDash(k.aov, (x) => money2.format(x))],
      ["conversion (CVR)", pct(k.cvr)],
      ["sessions", count.format(k.sessions)],
      ["new users", count.format(k.new_users)],
      ["returning users", count.format(k.returning_users)],
      ["bounce rate", pct(k.bounce_rate)],
      ["cart abandonment", pct(k.cart_abandonment_rate)],
      ["units", count.format(k.units)],
      ["revenue", money.format(k.revenue)],
    ]);
    tiles("site-tiles", [
      ["search usage", pct(k.search_usage)],
      ["CVR with search", pct(k.search_cvr)],
      ["CVR without search", pct(k.non_search_cvr)],
      ["no-results rate", pct(k.no_results_rate)],
      ["rec CTR", pct(k.rec_ctr)],
      ["rec-driven GMV", money.format(k.rec_driven_gmv)],
    ]);
  }
  const f = (k && k.funnel) || { landed: 0, viewed_product: 0, added_to_cart: 0, started_checkout: 0, purchased: 0 };
  chart(
    "funnel-chart",
    barConfig(
      ["landed", "viewed a book", "added to cart", "started checkout", "purchased"],
      [f.landed, f.viewed_product, f.added_to_cart, f.started_checkout, f.purchased],
      PALETTE.slice(0, 5),
      { horizontal: true },
    ),
  );
  const mods = (k && k.rec_ctr_by_module) || {};
  const modNames = Object.keys(mods);
  chart(
    "rec-chart",
    barConfig(modNames, modNames.map((m) => (mods[m] === null ? 0 : 100 * mods[m])), PALETTE.slice(1), {
      scales: { y: { beginAtZero: true, title: { display: true, text: "CTR %" } } },
    }),
  );
  const units = (today && today.top_books_by_units) || [];
  chart("units-chart", barConfig(units.map(bookLabel), units.map((b) => b.units), CLOSED, { horizontal: true }));
  const byGmv = (today && today.top_books_by_gmv) || [];
  chart("gmv-chart", barConfig(byGmv.map(bookLabel), byGmv.map((b) => b.gmv), "#2f9e44", { horizontal: true }));
  chart("source-chart", doughnutConfig(k && k.sessions_by_source));
  chart("device-chart", doughnutConfig(k && k.sessions_by_device));
}

async function refresh() {
  try {
    const resp = await fetch("/api/v1/dashboard", { cache: "no-store" });
    if (!resp.ok) throw new Error("GET /api/v1/dashboard: HTTP " + resp.status);
    const d = await resp.json();
    const s = d.status || {};
    document.getElementById("max-event").textContent = when(s.max_event_time);
    document.getElementById("watermark").textContent = when(s.watermark);
    document.getElementById("events-seen").textContent = s.events_seen === undefined ? "–" : count.format(s.events_seen);
    document.getElementById("updated").textContent = new Date().toISOString().slice(11, 19) + " UTC";
    drawHourly(d.hours || []);
    drawToday(d.today);
    document.body.dataset.state = "ready";
  } catch (e) {
    document.body.dataset.state = "error";
    document.getElementById("error").textContent = "cannot refresh: " + e.message;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
