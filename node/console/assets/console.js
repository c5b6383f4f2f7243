// The gpumart console: reads this node's /api/v1/ (docs/API.md) and renders it. Everything a
// peer wrote (names, attributes, notes) goes into the page as text, never as HTML.
"use strict";

const MICRO = 1000000;

// Micro-units as the denom's human unit: a denom "u<name>", <name> a letter and then at least
// two letters or digits (uakt, uatom, uusdc), counts millionths of <NAME> (1,000,000 uakt =
// 1 AKT), as on Cosmos chains. Other denoms (usd, akt, ibc/...) have no known human unit: null.
function humanUnit(denom) {
  return /^u[a-z][a-z0-9]{2,}$/i.test(denom) ? denom.slice(1).toUpperCase() : null;
}

// "900000" -> "900,000"; works on the integer's digits, so no precision is lost.
function groupDigits(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

// An integer amount of micro-units as "<whole>.<fraction>" of the human unit, exactly.
function microToHuman(amount) {
  const digits = String(amount).padStart(7, "0");
  const whole = digits.slice(0, -6);
  const fraction = digits.slice(-6).replace(/0+$/, "");
  return groupDigits(whole) + (fraction ? "." + fraction : "");
}

// A price cell: the human unit first (when the denom has one), the micro-units below.
function priceCell(amount, denom, per) {
  const td = el("td", "num");
  const unit = humanUnit(denom);
  const micro = groupDigits(String(amount)) + " " + denom + per;
  if (unit) {
    td.append(microToHuman(amount) + " " + unit + per);
    td.append(el("span", "sub", micro));
  } else {
    td.append(micro);
  }
  return td;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", null, cell));
  return tr;
}

function gib(bytes) {
  const value = bytes / (1024 * 1024 * 1024);
  return (Number.isInteger(value) ? value : value.toFixed(1)) + " Gi";
}

function short(hex) {
  return hex && hex.length > 16 ? hex.slice(0, 8) + "\u2026" + hex.slice(-4) : hex;
}

function keyCell(hex, label) {
  const td = el("td", "mono", short(hex));
  td.title = hex;
  if (label) td.prepend(el("span", null, label + " "));
  return td;
}

function time(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function setStatus(id, text, isError) {
  const node = document.getElementById(id);
  node.textContent = text;
  node.classList.toggle("error", Boolean(isError));
}

// GET or POST `path`; the parsed JSON, or an Error carrying the API's {"error": ...} message.
async function api(path, options) {
  const response = await fetch(path, Object.assign({ cache: "no-store" }, options || {}));
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    throw new Error((body && body.error) || response.status + " " + response.statusText);
  }
  return body;
}

// ---- Offers ------------------------------------------------------------------------------------

const offers = { rows: [], key: "price", ascending: true };

function offerValue(offer, key) {
  switch (key) {
    case "provider": return offer.name || offer.provider;
    case "region": return offer.attributes.region || "";
    case "model": return offer.device.model;
    case "ram": return offer.device.ram_bytes;
    case "interface": return offer.device.interface;
    case "free": return offer.num_gpus;
    case "price": return offer.dph_per_gpu;
    case "reputation": return offer.reliability;
  }
  return "";
}

function gpuCell(device) {
  const td = el("td");
  td.append(el("span", "vendor", device.vendor + " "), device.model);
  return td;
}

function renderOffers() {
  const body = document.querySelector("#offers-table tbody");
  const sorted = offers.rows.slice().sort((a, b) => {
    const x = offerValue(a, offers.key), y = offerValue(b, offers.key);
    const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return offers.ascending ? order : -order;
  });
  body.replaceChildren(...sorted.map((offer) => {
    const tr = row([
      keyCell(offer.provider, offer.name),
      offer.attributes.region || "\u2013",
      gpuCell(offer.device),
      el("td", "num", gib(offer.device.ram_bytes)),
      offer.device.interface,
      el("td", "num", offer.num_gpus),
      priceCell(offer.dph_per_gpu, offer.denom, "/h"),
      el("td", "num", (offer.reliability * 100).toFixed(1) + "%" + (offer.verified ? " \u2713" : "")),
    ]);
    tr.dataset.provider = offer.provider;
    tr.dataset.model = offer.device.model;
    return tr;
  }));
  for (const th of document.querySelectorAll("#offers-table th[data-key]")) {
    th.classList.toggle("sorted-asc", th.dataset.key === offers.key && offers.ascending);
    th.classList.toggle("sorted-desc", th.dataset.key === offers.key && !offers.ascending);
  }
}

async function loadOffers() {
  const query = document.getElementById("offers-query").value.trim();
  setStatus("offers-status", "searching\u2026");
  try {
    const answer = await api("/api/v1/offers?limit=1000" + (query ? "&q=" + encodeURIComponent(query) : ""));
    offers.rows = answer.offers;
    renderOffers();
    setStatus("offers-status", answer.offers.length + " of " + answer.matched + " matching offers");
  } catch (error) {
    offers.rows = [];
    renderOffers();
    setStatus("offers-status", error.message, true);
  }
}

// ---- Leases ------------------------------------------------------------------------------------

function deviceText(lease) {
  const parts = [];
  for (const service of lease.services) {
    const replicas = service.placements.reduce((sum, placement) => sum + placement.replicas, 0);
    const device = service.device ? service.device.model + " " + gib(service.device.ram_bytes) + " " + service.device.interface : "no GPU";
    parts.push(service.name + ": " + replicas + "\u00d7 " + device);
  }
  return parts.join("; ");
}

async function loadLeases() {
  const params = new URLSearchParams();
  for (const name of ["state", "tenant", "provider"]) {
    const value = document.getElementById("leases-" + name).value.trim();
    if (value) params.set(name, value);
  }
  setStatus("leases-status", "loading\u2026");
  const body = document.querySelector("#leases-table tbody");
  try {
    const answer = await api("/api/v1/leases?" + params.toString());
    body.replaceChildren(...answer.leases.map((lease) => {
      const tr = row([
        keyCell(lease.id),
        el("td", "state-" + lease.state, lease.state),
        keyCell(lease.tenant),
        keyCell(lease.provider),
        deviceText(lease),
        priceCell(lease.price_per_hour, lease.denom, "/h"),
        lease.accrued ? priceCell(lease.accrued.cost, lease.denom, "") : el("td", "num", "\u2013"),
        time(lease.start_ms),
      ]);
      tr.dataset.lease = lease.id;
      return tr;
    }));
    setStatus("leases-status", answer.leases.length + " leases" + (answer.next_after ? " (first page)" : ""));
  } catch (error) {
    body.replaceChildren();
    setStatus("leases-status", error.message, true);
  }
}

// ---- Node --------------------------------------------------------------------------------------

function panel(title, entries) {
  const div = el("div", "panel");
  div.append(el("h2", null, title));
  const table = el("table");
  for (const [name, value] of entries) table.append(row([name, value instanceof Node ? value : String(value)]));
  div.append(table);
  return div;
}

async function loadNode() {
  setStatus("node-status", "loading\u2026");
  try {
    const s = await api("/api/v1/status");
    document.getElementById("node-summary").textContent = s.role + " " + short(s.node);
    const panels = [];
    panels.push(panel("Node", [
      ["identity", keyCell(s.node)], ["role", s.role], ["ready peers", s.ready_peers],
      ["offers in book", s.offers], ["open orders", s.open_orders + (s.open_orders_partial ? "+" : "")],
    ]));
    if (s.gossip) {
      const drops = Object.entries(s.gossip.drops).filter(([, count]) => count > 0)
        .concat(Object.entries(s.gossip.transport_drops).filter(([, count]) => count > 0));
      panels.push(panel("Gossip", [
        ["links", s.gossip.links], ["frames in / out", s.gossip.frames_in + " / " + s.gossip.frames_out],
        ["bytes in / out", s.gossip.bytes_in + " / " + s.gossip.bytes_out], ["delivered", s.gossip.delivered],
        ["bans", s.gossip.bans],
        ["drops", drops.length ? drops.map(([reason, count]) => reason + " " + count).join(", ") : "none"],
      ]));
    }
    panels.push(panel("Ledger", [
      ["verified at start", s.ledger.verified_at_start ? "yes" : "NO: " + s.ledger.verify],
      ["records checked at start", s.ledger.records], ["signatures checked", s.ledger.signatures],
      ["chain entries", s.ledger.chain_entries],
      ["recorded from gossip", s.leases_recorded],
    ]));
    if (s.capacity) {
      const entries = s.capacity.gpus.map((gpu) => [
        gpu.device.model + " " + gib(gpu.device.ram_bytes) + " " + gpu.device.interface + (gpu.cuda ? " cuda " + gpu.cuda : ""),
        gpu.free_gpus + " free on " + gpu.nodes + " nodes"]);
      entries.push(["cpu", s.capacity.cpu_millis / 1000 + " cores"], ["memory", gib(s.capacity.memory_bytes)]);
      entries.push(["active leases", s.leases_active], ["reservations", s.reservations],
        ["bidding", s.bidding ? "yes" : "no"]);
      for (const [denom, amount] of Object.entries(s.revenue_per_hour || {})) {
        const unit = humanUnit(denom);
        entries.push(["revenue per hour", (unit ? microToHuman(amount) + " " + unit + " = " : "") + groupDigits(String(amount)) + " " + denom]);
      }
      panels.push(panel("Provider capacity", entries));
    }
    document.getElementById("node-panels").replaceChildren(...panels);
    setStatus("node-status", "");
  } catch (error) {
    setStatus("node-status", error.message, true);
  }
}

// ---- Dry run -----------------------------------------------------------------------------------

function renderGroup(group) {
  const div = el("div", "group");
  div.append(el("h2", null, "Placement group " + group.name));
  if (group.candidates.length === 0) div.append(el("p", "status error", "No provider would bid."));
  else {
    const table = el("table");
    table.append(row(["Rank", "Provider", "Device", "Option rank", "Price per hour", "Reputation"].map((t) => el("th", null, t))));
    group.candidates.forEach((candidate, index) => {
      const devices = candidate.services.map((s) => (s.device ? s.device.model + " " + gib(s.device.ram_bytes) + " " + s.device.interface : "no GPU")).join("; ");
      const tr = row([
        el("td", "num", index + 1), keyCell(candidate.provider), devices, candidate.ranks.join(", "),
        priceCell(candidate.price_per_hour, candidate.denom, "/h"),
        el("td", "num", (candidate.reputation * 100).toFixed(1) + "%"),
      ]);
      if (index === 0) tr.className = "winner";
      tr.dataset.provider = candidate.provider;
      table.append(tr);
    });
    const scroll = el("div", "scroll");
    scroll.append(table);
    div.append(scroll);
  }
  if (group.excluded_providers.length) {
    div.append(el("h2", null, "Would not bid"));
    const table = el("table");
    table.append(row(["Provider", "Reason", "Why"].map((t) => el("th", null, t))));
    for (const entry of group.excluded_providers) {
      table.append(row([keyCell(entry.provider, entry.name), entry.reason, entry.why]));
    }
    const scroll = el("div", "scroll");
    scroll.append(table);
    div.append(scroll);
  }
  return div;
}

async function dryRun() {
  const sdl = document.getElementById("dryrun-sdl").value;
  const policy = document.getElementById("dryrun-policy").value;
  setStatus("dryrun-status", "asking the offer book\u2026");
  const result = document.getElementById("dryrun-result");
  try {
    const answer = await api("/api/v1/dryrun?policy=" + encodeURIComponent(policy), {
      method: "POST", headers: { "Content-Type": "application/yaml" }, body: sdl,
    });
    result.replaceChildren(...answer.groups.map(renderGroup));
    const warnings = answer.warnings.map((w) => (w.path ? w.path + ": " : "") + w.message);
    setStatus("dryrun-status", answer.providers + " providers in the offer book, policy " + answer.policy +
      (warnings.length ? "; SDL warnings: " + warnings.join("; ") : ""));
  } catch (error) {
    result.replaceChildren();
    setStatus("dryrun-status", error.message, true);
  }
}

// ---- Tabs --------------------------------------------------------------------------------------

const pages = { offers: loadOffers, leases: loadLeases, node: loadNode, dryrun: null };

function show() {
  const name = Object.hasOwn(pages, location.hash.slice(1)) ? location.hash.slice(1) : "offers";
  for (const page of Object.keys(pages)) {
    document.getElementById("page-" + page).hidden = page !== name;
    document.getElementById("tab-" + page).classList.toggle("active", page === name);
  }
  if (pages[name]) pages[name]();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("offers-form").addEventListener("submit", (event) => { event.preventDefault(); loadOffers(); });
  document.getElementById("leases-form").addEventListener("submit", (event) => { event.preventDefault(); loadLeases(); });
  document.getElementById("dryrun-form").addEventListener("submit", (event) => { event.preventDefault(); dryRun(); });
  document.getElementById("dryrun-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) document.getElementById("dryrun-sdl").value = await file.text();
  });
  for (const th of document.querySelectorAll("#offers-table th[data-key]")) {
    th.addEventListener("click", () => {
      offers.ascending = offers.key === th.dataset.key ? !offers.ascending : true;
      offers.key = th.dataset.key;
      renderOffers();
    });
  }
  window.addEventListener("hashchange", show);
  show();
  api("/api/v1/status").then((s) => {
    document.getElementById("node-summary").textContent = s.role + " " + short(s.node);
  }).catch(() => {});
});
